#!/usr/bin/env bash
# Demo of the service: installs what is missing (scripts/setup.sh), builds
# nnlabd and nnlab in build/, starts nnlabd on a free loopback port with a
# temporary data directory, and runs the lecture's vanishing-gradient
# experiment through the CLI: the deep sigmoid network
# [784, 30, 30, 30, 30, 10] with W ~ N(0, 1), then the same depth with ReLU
# and He initialisation, each trained with SGD (lr 0.1, batch 10) for 5
# epochs on the MNIST digits while `nnlab train --watch` shows the per-layer
# learning speed ||delta^l|| live. Prints both final test accuracies and
# stops the server.
#
# Environment: NNLAB_DEMO_EPOCHS (default 5).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
epochs="${NNLAB_DEMO_EPOCHS:-5}"

"$repo/scripts/setup.sh"
cmake -S "$repo" -B "$repo/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$repo/build" -j "$(nproc)" --target nnlabd nnlab

nnlabd="$repo/build/server/nnlabd"
nnlab="$repo/build/client/nnlab"

work="$(mktemp -d "${TMPDIR:-/tmp}/nnlab-demo.XXXXXX")"
server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  server_pid=""
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the server picks a free port and prints it on its first line.
"$nnlabd" --listen=127.0.0.1:0 --data_dir="$work/data" \
  >"$work/nnlabd.out" 2>"$work/nnlabd.log" &
server_pid=$!
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's/^nnlabd listening on port \([0-9]*\)$/\1/p' "$work/nnlabd.out")"
  [[ -n "$port" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "demo: nnlabd exited:" >&2
    cat "$work/nnlabd.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$port" ]]; then
  echo "demo: nnlabd did not report its port" >&2
  exit 1
fi
export NNLAB_SERVER="127.0.0.1:$port"
echo "demo: nnlabd serving on $NNLAB_SERVER (data in $work/data)"
"$nnlab" health

# Test-set accuracy of the model's most recent job.
final_accuracy() {
  "$nnlab" --json jobs list --model "$1" | tail -n 1 |
    sed -n 's/.*"lastEval":{[^}]*"accuracy":\([-0-9.eE+]*\).*/\1/p'
}

run() {
  local id="$1" spec="$2"
  echo
  echo "== $id: $spec"
  "$nnlab" models create --spec "$repo/$spec" --id "$id"
  "$nnlab" train --model "$id" --dataset mnist --optimizer sgd --lr 0.1 \
    --epochs "$epochs" --batch 10 --watch
}

run deep-sigmoid examples/lecture_deep_sigmoid.textproto
run deep-relu examples/lecture_deep_relu.textproto

echo
echo "final test accuracy after $epochs epochs (2,000 held-out digits):"
printf '  deep sigmoid, W ~ N(0, 1):  %s\n' "$(final_accuracy deep-sigmoid)"
printf '  deep ReLU, He init:         %s\n' "$(final_accuracy deep-relu)"

stop_server
echo "demo: nnlabd stopped"
