#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan + UBSan) and runs each for
# a while; exits non-zero if any target crashes, leaks, times out or runs
# out of memory.
#
#   tests/fuzz/run.sh [seconds per target, default 60]
#
# Environment: NNLAB_FUZZ_BUILD_DIR (default <repo>/build-fuzz),
# NNLAB_FUZZ_TARGETS (default: all four), NNLAB_FUZZ_JOBS (build
# parallelism, default 2). Needs the packages of scripts/setup.sh.
# Seeds are generated into <build>/fuzz-seeds; what the fuzzer learns is
# kept in <build>/fuzz-corpus across runs; crash inputs land in
# <build>/fuzz-artifacts (reproduce: <build>/tests/fuzz/<target> <file>).
set -euo pipefail

seconds="${1:-60}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${NNLAB_FUZZ_BUILD_DIR:-$repo/build-fuzz}"
targets=(${NNLAB_FUZZ_TARGETS:-fuzz_requests fuzz_spec fuzz_readers fuzz_upload})

for tool in clang++-14 clang-14 cmake ninja; do
  command -v "$tool" >/dev/null || {
    echo "fuzz: $tool is missing (run scripts/setup.sh)" >&2
    exit 2
  }
done

mkdir -p "$build"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNNLAB_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14 \
  >"$build/fuzz-configure.log" 2>&1 || {
  cat "$build/fuzz-configure.log" >&2
  exit 2
}
cmake --build "$build" -j"${NNLAB_FUZZ_JOBS:-2}" --target fuzz_targets

bin="$build/tests/fuzz"
seeds="$build/fuzz-seeds"
rm -rf "$seeds"
"$bin/fuzz_make_corpus" "$repo" "$seeds"

declare -A seed_dir=([fuzz_requests]=requests [fuzz_spec]=spec
                     [fuzz_readers]=readers [fuzz_upload]=upload)
failed=()
summary=()
for t in "${targets[@]}"; do
  corpus="$build/fuzz-corpus/$t"
  artifacts="$build/fuzz-artifacts/$t"
  log="$build/fuzz-logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  echo "fuzz: $t for ${seconds}s (log $log)"
  status=0
  # -close_fd_mask=2: the server's per-request error lines would drown the
  # log; libFuzzer and sanitizer reports still reach it.
  "$bin/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -max_len=32768 -print_final_stats=1 -close_fd_mask=2 \
    -artifact_prefix="$artifacts/" "$corpus" "$seeds/${seed_dir[$t]}" \
    >"$log" 2>&1 </dev/null || status=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  if ((status != 0)); then
    failed+=("$t")
    summary+=("$t: FAILED (exit $status) after ${execs:-?} executions")
    echo "fuzz: $t FAILED (exit $status); end of its log:" >&2
    tail -n 60 "$log" >&2
    ls -1 "$artifacts" >&2 || true
  else
    summary+=("$t: ${execs:-?} executions (${rate:-?}/s), no crash")
  fi
done

echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
