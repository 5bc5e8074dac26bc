#!/usr/bin/env bash
# Packs what bench/compare.sh needs into one folder, to run the comparison
# on a bigger machine (e.g. 16 cores) without building nnlab there: the
# throughput and peak_bench binaries with the shared libraries ldd finds
# for them (all but glibc's own, which the target must provide, 2.36 or
# newer: Debian 12's), the MNIST and Fashion-MNIST files, compare.sh and
# torch_reference.py. The target still needs /usr/bin/python3 with PyTorch
# (Debian: apt-get install python3-torch) for the reference side.
#
# Usage: bench/bundle.sh [--build=DIR] [--out=DIR]
#   --build: a Release build with throughput and peak_bench (default
#            build-bench); --out: the bundle (default DIR/bundle, ignored
#            by git like every build folder).
# Then copy the folder over and run there, as root for --rt:
#   BUNDLE/run.sh [--threads=1,2,4,8,16] [--rt] [compare.sh's options]
# which prints peak_bench's FMA peak and GEMM table, then the comparison
# table (also in BUNDLE/results/).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$repo/build-bench"
out=""
for arg in "$@"; do
  case "$arg" in
    --build=*) build="${arg#*=}" ;;
    --out=*) out="${arg#*=}" ;;
    *) sed -n '2,19p' "$0" >&2; exit 2 ;;
  esac
done
[[ -n "$out" ]] || out="$build/bundle"
for bin in throughput peak_bench; do
  if [[ ! -x "$build/bench/$bin" ]]; then
    echo "bundle: $build/bench/$bin not found; build it first:" >&2
    echo "  cmake -S $repo -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release" >&2
    echo "  cmake --build $build -j2 --target throughput peak_bench" >&2
    exit 1
  fi
done
data="${NNLAB_DATASETS_DIR:-$repo/data}"
for set in mnist fashion-mnist; do
  if [[ ! -d "$data/$set" ]]; then
    echo "bundle: $data/$set missing: run scripts/setup.sh" >&2
    exit 1
  fi
done

rm -rf "$out"
mkdir -p "$out/bench" "$out/build/bench" "$out/lib" "$out/libexec" \
  "$out/data" "$out/results"
for bin in throughput peak_bench; do
  cp "$build/bench/$bin" "$out/libexec/"
  # Libraries by their resolved paths; glibc's (loader, libc, libm,
  # libpthread, libdl, librt) stay the target's, which must match them.
  ldd "$build/bench/$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
    grep -v -E '/(ld-linux[^/]*|libc|libm|libpthread|libdl|librt)\.so' |
    while read -r lib; do cp -L -n "$lib" "$out/lib/"; done
  # A wrapper where compare.sh looks for the binary; the binary re-executes
  # itself (/proc/self/exe) for each measurement, so it runs directly with
  # the bundled libraries first on the search path.
  cat >"$out/build/bench/$bin" <<WRAP
#!/bin/sh
here="\$(cd "\$(dirname "\$0")/../.." && pwd)"
LD_LIBRARY_PATH="\$here/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" \\
  exec "\$here/libexec/$bin" "\$@"
WRAP
  chmod +x "$out/build/bench/$bin"
done
cp -rL "$data/mnist" "$data/fashion-mnist" "$out/data/"
cp "$repo/bench/compare.sh" "$repo/bench/torch_reference.py" "$out/bench/"
cat >"$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs peak_bench, then bench/compare.sh on this bundle (see
# bench/bundle.sh in nnlab). Default threads: 1, 2 and every power of two
# up to this machine's cores.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export NNLAB_DATASETS_DIR="$here/data"
threads="1"
for ((t = 2; t <= $(nproc); t *= 2)); do threads+=",$t"; done
args=("--threads=$threads")
for arg in "$@"; do
  case "$arg" in --threads=*) args=() ;; esac
done
"$here/build/bench/peak_bench" | tee "$here/results/peak.md"
"$here/bench/compare.sh" --build="$here/build" --out="$here/results/compare.md" \
  "${args[@]}" "$@"
RUN
chmod +x "$out/run.sh"
echo "bundle: $out ($(du -sh "$out" | cut -f1)); run $out/run.sh there" >&2
