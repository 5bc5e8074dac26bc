#!/usr/bin/env bash
# Runs nnlab's throughput tool and the PyTorch reference on the same
# workloads, interleaved (nnlab, PyTorch out of the box, PyTorch tuned for
# each workload and thread count, so a change in machine load hits all
# three alike), and prints a markdown table of training and inference
# samples/s with the nnlab/PyTorch ratio against the better PyTorch run.
#
# Usage: bench/compare.sh [--workload=NAME[,NAME...]] [--threads=N[,N...]]
#                         [--epochs=N] [--build=DIR] [--out=FILE] [--rt]
# --rt runs every measurement (both tools alike) under SCHED_FIFO
# (chrt -f 10; needs root): on a machine shared with builds the figures
# are then the programs' own, not the neighbours' (the kernel still keeps
# 5% of each second for everyone else). Each measurement holds a lock
# ($TMPDIR/nnlab-bench.lock) while it runs, so concurrent comparisons take
# turns.
# Needs a Release build with the bench targets (default build dir:
# build-bench; configure with -DCMAKE_BUILD_TYPE=Release) and Debian's
# python3-torch. The table also goes to FILE (default DIR/compare.md), the
# raw JSON lines to FILE.jsonl.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$repo/build-bench"
workloads="lecture-b10,lecture-b64,wide-mlp,wide-mlp-bn-dropout,lstm-rows,resnet-small,gan-mlp"
threads="1,2"
epochs=""
out=""
rt=()
# --rt measurements take this lock one at a time, so two comparisons on one
# machine never run their real-time processes side by side (two SCHED_FIFO
# processes with spinning OpenMP threads on two cores starve each other).
lock="${TMPDIR:-/tmp}/nnlab-bench.lock"
for arg in "$@"; do
  case "$arg" in
    --workload=*) workloads="${arg#*=}" ;;
    --threads=*) threads="${arg#*=}" ;;
    --epochs=*) epochs="--epochs=${arg#*=}" ;;
    --build=*) build="${arg#*=}" ;;
    --out=*) out="${arg#*=}" ;;
    --rt) rt=(flock "$lock" chrt -f 10) ;;
    *) sed -n '2,19p' "$0" >&2; exit 2 ;;
  esac
done

[[ -n "$out" ]] || out="$build/compare.md"
tool="$build/bench/throughput"
if [[ ! -x "$tool" ]]; then
  echo "compare: $tool not found; build it first:" >&2
  echo "  cmake -S $repo -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release" >&2
  echo "  cmake --build $build -j2 --target throughput" >&2
  exit 1
fi
python=/usr/bin/python3
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "compare: PyTorch missing: apt-get install -y python3-torch" >&2
  exit 1
fi

jsonl="$out.jsonl"
: >"$jsonl"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
# Tuned PyTorch: libgomp threads sleep instead of spinning, and glibc keeps
# freed memory instead of returning it to the kernel each step.
tuned_env=(OMP_WAIT_POLICY=PASSIVE
  GLIBC_TUNABLES=glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=33554432:glibc.malloc.top_pad=268435456)
IFS=',' read -r -a wl <<<"$workloads"
IFS=',' read -r -a th <<<"$threads"
for w in "${wl[@]}"; do
  for t in "${th[@]}"; do
    echo "compare: $w, $t thread(s)" >&2
    "${rt[@]}" "$tool" --child --json --workload="$w" --threads="$t" $epochs >>"$jsonl"
    for variant in default tuned; do
      env_args=(OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" MKL_NUM_THREADS="$t")
      [[ "$variant" == tuned ]] && env_args+=("${tuned_env[@]}")
      "${rt[@]}" env "${env_args[@]}" "$python" "$repo/bench/torch_reference.py" --child \
        --json --workload="$w" --threads="$t" $epochs >>"$jsonl" ||
        echo "compare: PyTorch $variant run of $w failed" >&2
    done
  done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
sched="normal scheduling"
((${#rt[@]})) && sched="SCHED_FIFO (--rt)"

cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
flags="$(grep -o -w -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
openblas="$(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo '?')"
torch_version="$("$python" -c 'import torch; print(torch.__version__)')"
gcc_version="$(c++ -dumpfullversion 2>/dev/null || echo '?')"
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"

"$python" - "$jsonl" "$cpu ($(nproc) cores; $flags)" "$openblas" \
  "$torch_version" "$gcc_version" "$commit" "$load_before" "$load_after" \
  "$sched" \
  <<'EOF' | tee "$out"
import json, sys

path, machine, openblas, torch_v, gcc_v, commit, load0, load1, sched = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
# Targets of the performance issue: training ratio per thread count, and
# inference ratio (every workload at least 1.5x PyTorch).
train_target = {
    "lecture-b10": {1: 6, 2: 6}, "lecture-b64": {1: 3, 2: 3},
    "wide-mlp": {1: 1.5, 2: 1.5}, "wide-mlp-bn-dropout": {1: 1.5, 2: 1.5},
    "lstm-rows": {1: 2.5, 2: 2.5}, "resnet-small": {1: 1.3, 2: 1.3},
    "gan-mlp": {1: 2, 2: 2},
}
infer_target = {w: 1.5 for w in train_target}
order = list(train_target)
nn = {(r["workload"], r["threads"]): r for r in rows if r["tool"] == "nnlab"}
best = {}
for r in rows:
    if r["tool"] != "pytorch":
        continue
    key = (r["workload"], r["threads"])
    if key not in best or (r["train_samples_per_s"]["median"] >
                           best[key]["train_samples_per_s"]["median"]):
        best[key] = r
best_infer = {}
for r in rows:
    if r["tool"] == "pytorch":
        key = (r["workload"], r["threads"])
        v = r["infer_samples_per_s"]["median"]
        if key not in best_infer or v > best_infer[key]:
            best_infer[key] = v

def f(v):
    return f"{v:,.0f}"

print(f"Machine: {machine}. OpenBLAS {openblas}, PyTorch {torch_v}, "
      f"g++ {gcc_v}, nnlab {commit}. Load average before/after: "
      f"{load0} / {load1}; {sched}.\n")
print("| workload | threads | nnlab train/s (min-max) | PyTorch train/s "
      "(best of default/tuned) | train ratio | target | met | "
      "ratio per CPU-second | nnlab infer/s | PyTorch infer/s | infer ratio "
      "| infer target | nnlab GFLOP/s | nnlab / PyTorch peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
keys = sorted(set(nn) | set(best),
              key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1]))
for key in keys:
    w, t = key
    a, b = nn.get(key), best.get(key)
    if a is not None and "skipped" in a:
        print(f"| {w} | {t} | skipped: {a['skipped']} | | | | | | | | | | | |")
        continue
    if a is None or b is None:
        print(f"| {w} | {t} | {'missing' if a is None else 'ok'} | "
              f"{'missing' if b is None else 'ok'} | | | | | | | | | | |")
        continue
    at, bt = a["train_samples_per_s"], b["train_samples_per_s"]
    ratio = at["median"] / bt["median"]
    cpu_ratio = (a["train_samples_per_cpu_s"]["median"] /
                 b["train_samples_per_cpu_s"]["median"])
    target = train_target.get(w, {}).get(t)
    ai = a["infer_samples_per_s"]["median"]
    bi = best_infer[key]
    iratio = ai / bi
    itarget = infer_target.get(w)
    met = "?" if target is None else ("yes" if ratio >= target else "no")
    imet = "" if itarget is None else (
        f">= {itarget}x " + ("yes" if iratio >= itarget else "no"))
    gflops = a.get("train_gflops") or 0
    print(f"| {w} | {t} | {f(at['median'])} ({f(at['min'])}-{f(at['max'])}) "
          f"| {f(bt['median'])} ({b['variant']}) | {ratio:.2f}x | "
          f">= {target}x | {met} | {cpu_ratio:.2f}x | {f(ai)} | {f(bi)} | "
          f"{iratio:.2f}x | {imet} | "
          f"{gflops:.1f} | {a['peak_rss_mb']:.0f} / {b['peak_rss_mb']:.0f} |")
EOF
echo "compare: table in $out, raw results in $jsonl" >&2
