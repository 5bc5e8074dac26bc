#!/usr/bin/env bash
# Soak test of nnlabd (manual; not run by CI): bursts of StartJob calls
# beyond max_jobs + the queue limit (every burst must get RESOURCE_EXHAUSTED
# and every accepted job must complete), 50 metric watchers (some replaying
# finished jobs), and Infer clients at 1, 8 and 32 concurrent callers,
# while the server's RSS and thread count are sampled.
#
# Usage: tests/server/soak.sh [BUILD_DIR]
#   SOAK_SECONDS   run time (default 300)
#   SOAK_MAX_JOBS  --max_jobs of the server (default 2)
#   SOAK_QUEUE     --max_queued_jobs of the server (default 4)
set -euo pipefail

here="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$here/build}"
seconds="${SOAK_SECONDS:-300}"
max_jobs="${SOAK_MAX_JOBS:-2}"
queue="${SOAK_QUEUE:-4}"
nnlabd="$build/server/nnlabd"
soak="$build/examples/client_soak"
for bin in "$nnlabd" "$soak"; do
  [[ -x "$bin" ]] || { echo "missing $bin (cmake --build $build --target nnlabd client_soak)" >&2; exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/nnlab-soak-XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# 50 watchers hold a handler thread each; leave room for the Infer clients.
"$nnlabd" --listen=127.0.0.1:0 --data_dir="$work/data" \
  --max_jobs="$max_jobs" --max_queued_jobs="$queue" --worker_threads=160 \
  --blas_threads=1 >"$work/port" 2>"$work/nnlabd.log" &
server_pid=$!
for _ in $(seq 100); do
  grep -q "listening on port" "$work/port" 2>/dev/null && break
  sleep 0.1
done
port="$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$work/port")"
[[ -n "$port" ]] || { echo "nnlabd did not start:" >&2; cat "$work/nnlabd.log" >&2; exit 1; }

echo "soak: nnlabd pid $server_pid port $port, max_jobs $max_jobs, queue $queue, ${seconds}s"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
soak_status=0
"$soak" --server="127.0.0.1:$port" --pid="$server_pid" --seconds="$seconds" \
  --watchers=50 --levels=1,8,32 --max_jobs="$max_jobs" --queue="$queue" ||
  soak_status=$?
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server errors logged: $(grep -c ' ERROR ' "$work/nnlabd.log" || true)"
grep ' ERROR ' "$work/nnlabd.log" | head -5 || true
kill -TERM "$server_pid"
wait "$server_pid"
echo "nnlabd exit status: $?"
server_pid=""
exit "$soak_status"
