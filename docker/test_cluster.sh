#!/usr/bin/env bash
# The compose file's cluster (docker/compose.yaml, profile "cluster"), run
# with podman as three containers on one podman network: a coordinator and
# two workers that join it with the cluster's token, each binding Gloo to its
# address on that network (a wildcard is refused). From the host's CLI it
# runs a 2-replica job through the coordinator and checks that it completes
# with a worker as rank 1 and an allreduce time on every step.
#
# Usage: docker/test_cluster.sh IMAGE CLI
# Called by docker/test_container.sh after the image is built; runs alone
# against an image built before.
set -euo pipefail

image="$1"
cli="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
run_id="nnlab-cluster-$$"
net="${run_id}"

# shellcheck source=docker/podman_env.sh
source "${here}/podman_env.sh"
nnlab_podman_setup

say() { echo "== cluster: $*"; }
fail() { echo "cluster container test FAILED: $*" >&2; exit 1; }

containers=()
scratch="$(mktemp -d)"
cleanup() {
  local c
  for c in "${containers[@]}"; do podman rm -f -v -t 0 "${c}" >/dev/null 2>&1 || true; done
  podman network rm -f "${net}" >/dev/null 2>&1 || true
  rm -rf "${scratch}"
}
trap cleanup EXIT

logs() {
  local c
  for c in "${containers[@]}"; do
    echo "--- ${c}" >&2
    podman logs "${c}" 2>&1 | tail -15 >&2 || true
  done
}

# A network of our own (podman picks a free subnet); the members get fixed
# addresses in it, as compose.yaml's ipv4_address entries give them.
podman network create "${net}" >/dev/null
subnet="$(podman network inspect -f '{{range .Subnets}}{{.Subnet}} {{end}}' "${net}" | awk '{print $1}')"
[[ "${subnet}" =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.0/24$ ]] ||
  fail "network ${net} has subnet '${subnet}', expected an IPv4 /24"
prefix="${BASH_REMATCH[1]}"
port="$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
server="127.0.0.1:${port}"

# The container's user must read the token (compose mounts it the same way,
# as a secret).
openssl rand -hex 16 >"${scratch}/token"
chmod 0644 "${scratch}/token"
secret=(-v "${scratch}/token:/run/secrets/nnlab_token:ro")

# Starts member $1 (network alias) at address $2 with extra nnlabd flags.
member() {
  local alias="$1" ip="$2"
  shift 2
  podman run -d --name "${run_id}-${alias}" --network "${net}" --ip "${ip}" \
    --network-alias "${alias}" --read-only --read-only-tmpfs=false \
    --cap-drop=ALL --security-opt no-new-privileges "${secret[@]}" "$@" >/dev/null
  containers+=("${run_id}-${alias}")
}
nnlab() { "${cli}" --server "${server}" --token_file "${scratch}/token" --timeout 60 "$@"; }

say "a wildcard collective address is refused"
if podman run --rm --network "${net}" "${secret[@]}" "${image}" \
  --token_file=/run/secrets/nnlab_token --collective_listen=0.0.0.0 >"${scratch}/out" 2>&1; then
  fail "nnlabd started with --collective_listen=0.0.0.0"
fi
grep -q "wildcard" "${scratch}/out" || { cat "${scratch}/out" >&2; fail "no wildcard message"; }
grep "wildcard" "${scratch}/out" | head -1

say "coordinator and two workers on ${net} (${subnet})"
member coordinator "${prefix}.10" -p "${server}:50051" "${image}" \
  --token_file=/run/secrets/nnlab_token --collective_listen="${prefix}.10"
for ((i = 0; i < 240; i++)); do
  "${cli}" --server "${server}" --timeout 5 health >/dev/null 2>&1 && break
  [[ "$(podman inspect -f '{{.State.Running}}' "${run_id}-coordinator")" == true ]] ||
    { logs; fail "the coordinator exited during start-up"; }
  sleep 0.5
done
for w in 1 2; do
  member "worker-${w}" "${prefix}.1${w}" "${image}" \
    --token_file=/run/secrets/nnlab_token --join=coordinator:50051 \
    --advertise="worker-${w}:50051" --collective_listen="${prefix}.1${w}"
done
for ((i = 0; i < 240; i++)); do
  if nnlab cluster list >"${scratch}/members" 2>&1 &&
    (($(grep -cE '^worker-[0-9]+ .* alive ' "${scratch}/members") == 2)); then
    break
  fi
  for c in "${containers[@]}"; do
    [[ "$(podman inspect -f '{{.State.Running}}' "${c}")" == true ]] ||
      { logs; fail "${c} exited during start-up"; }
  done
  sleep 0.5
done
cat "${scratch}/members"
(($(grep -cE '^worker-[0-9]+ .* alive ' "${scratch}/members") == 2)) ||
  { logs; fail "the two workers did not join"; }

say "a 2-replica job through the coordinator"
model="$(nnlab models create -q --spec "${here}/../examples/mnist_mlp_100.textproto")"
nnlab train --model "${model}" --dataset mnist --optimizer sgd --lr 0.1 \
  --batch 32 --max_steps 60 --eval_every 60 --replicas 2 --watch --every 1 \
  >"${scratch}/watch" 2>&1 || { cat "${scratch}/watch" >&2; logs; fail "nnlab train failed"; }
grep -E '^(state|job) ' "${scratch}/watch"
grep -q '^job .* COMPLETED' "${scratch}/watch" || { logs; fail "the 2-replica job did not complete"; }
steps="$(grep -c '^step ' "${scratch}/watch")"
with_comm="$(grep -c '^step .* allreduce [0-9.]*ms' "${scratch}/watch")"
((steps == 60 && with_comm == steps)) ||
  fail "${with_comm} of ${steps} step events carry an allreduce time, expected 60 of 60"
job="$(awk '/^job / {sub(":", "", $2); print $2; exit}' "${scratch}/watch")"
nnlab --json jobs get "${job}" >"${scratch}/job.json"
grep -qE '"replicaMembers": *\[ *"coordinator", *"worker-[12]" *\]' <(tr -d '\n' <"${scratch}/job.json") ||
  { cat "${scratch}/job.json" >&2; fail "job ${job} did not run on the coordinator and a worker"; }
echo "job ${job}: ${steps} steps on $(tr -d '\n ' <"${scratch}/job.json" | grep -oE '"replicaMembers":\[[^]]*\]')"
