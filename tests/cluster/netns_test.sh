#!/usr/bin/env bash
# Two hosts for real: two network namespaces joined by a veth pair, each with
# its own network stack, 5 ms of netem delay on each side of the link (10 ms
# round trip), a coordinator nnlabd in one and a worker in the other. A
# 2-replica job started through the CLI must complete, its gradients crossing
# the link through Gloo, and (with the delay) every allreduce must take at
# least one round trip.
#
# Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`), iproute2's `ip`
# and `tc`; exits 77 (ctest's SKIP_RETURN_CODE) with the reason where they are
# missing. A kernel without sch_netem (some sandboxes) runs the same job
# without the delay and says so.
#
# Usage: netns_test.sh NNLABD NNLAB SPEC
set -euo pipefail

nnlabd="$1"
cli="$2"
spec="$3"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "netns_test FAILED: $*" >&2; exit 1; }

[[ "$(id -u)" == 0 ]] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "no 'ip' (iproute2) on PATH"
command -v tc >/dev/null || skip "no 'tc' (iproute2) on PATH"

# Unique per run: several runs (or engineers) may share the machine. Interface
# names must stay within 15 characters.
id="$(printf '%x' $((($$ * 32768 + RANDOM) % 16777216)))"
ns_a="nnlab-${id}-a"
ns_b="nnlab-${id}-b"
veth_a="nlv${id}a"
veth_b="nlv${id}b"
# Private to the two namespaces, so fixed addresses and ports cannot clash
# with anything outside them.
addr_a=10.77.0.1
addr_b=10.77.0.2

scratch="$(mktemp -d)"
pids=()
namespaces=()
cleanup() {
  local p n
  for p in "${pids[@]}"; do kill -9 "${p}" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "${p}" 2>/dev/null || true; done
  # Deleting a namespace also deletes its end of the veth pair (and the peer).
  for n in "${namespaces[@]}"; do ip netns del "${n}" 2>/dev/null || true; done
  rm -rf "${scratch}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "${ns_a}" 2>"${scratch}/err" ||
  skip "cannot create a network namespace: $(cat "${scratch}/err")"
namespaces+=("${ns_a}")
ip netns add "${ns_b}"
namespaces+=("${ns_b}")
ip link add "${veth_a}" type veth peer name "${veth_b}" 2>"${scratch}/err" ||
  skip "cannot create a veth pair: $(cat "${scratch}/err")"
ip link set "${veth_a}" netns "${ns_a}"
ip link set "${veth_b}" netns "${ns_b}"
ip -n "${ns_a}" addr add "${addr_a}/24" dev "${veth_a}"
ip -n "${ns_b}" addr add "${addr_b}/24" dev "${veth_b}"
for n in "${ns_a}" "${ns_b}"; do ip -n "${n}" link set lo up; done
ip -n "${ns_a}" link set "${veth_a}" up
ip -n "${ns_b}" link set "${veth_b}" up

delay_ms=5
if ip netns exec "${ns_a}" tc qdisc add dev "${veth_a}" root netem delay "${delay_ms}ms" 2>"${scratch}/err" &&
  ip netns exec "${ns_b}" tc qdisc add dev "${veth_b}" root netem delay "${delay_ms}ms" 2>"${scratch}/err"; then
  echo "link: veth ${veth_a} <-> ${veth_b}, netem delay ${delay_ms} ms each way"
else
  echo "NOTICE: tc netem unavailable ($(cat "${scratch}/err")): running over the veth pair without the delay"
  delay_ms=0
fi

openssl rand -hex 16 >"${scratch}/token"
in_a() { ip netns exec "${ns_a}" "$@"; }
nnlab() { in_a "${cli}" --server "${addr_a}:50051" --token_file "${scratch}/token" --timeout 60 "$@"; }

# Each nnlabd binds gRPC and Gloo to its namespace's veth address only.
# Started by `ip netns exec` itself, not a shell function, so that $! is the
# nnlabd (ip execs it) and cleanup's kill reaches it.
ip netns exec "${ns_a}" "${nnlabd}" --listen="${addr_a}:50051" --data_dir="${scratch}/a" \
  --token_file="${scratch}/token" --collective_listen="${addr_a}" \
  --collective_timeout_ms=20000 >"${scratch}/a.log" 2>&1 &
pids+=($!)

logs() { echo "--- coordinator log"; tail -20 "${scratch}/a.log"; echo "--- worker log"; tail -20 "${scratch}/b.log"; } >&2
alive() {
  local p
  for p in "${pids[@]}"; do
    kill -0 "${p}" 2>/dev/null || { logs; fail "an nnlabd exited during start-up"; }
  done
}
# The worker exits when its first join fails: start it once the coordinator
# answers.
for ((i = 0; i < 240; i++)); do
  alive
  nnlab health >/dev/null 2>&1 && break
  sleep 0.5
done
touch "${scratch}/b.log"
ip netns exec "${ns_b}" "${nnlabd}" --listen="${addr_b}:50051" --data_dir="${scratch}/b" \
  --token_file="${scratch}/token" --collective_listen="${addr_b}" \
  --collective_timeout_ms=20000 --join="${addr_a}:50051" >"${scratch}/b.log" 2>&1 &
pids+=($!)

members=0
for ((i = 0; i < 240; i++)); do
  alive
  if nnlab cluster list >"${scratch}/members" 2>/dev/null; then
    members="$(grep -c "${addr_b}:50051" "${scratch}/members" || true)"
    ((members == 0)) || break
  fi
  sleep 0.5
done
((members == 1)) || { logs; cat "${scratch}/members" >&2; fail "the worker in ${ns_b} did not join"; }
cat "${scratch}/members"

model="$(nnlab models create -q --spec "${spec}")" || fail "could not create the model from ${spec}"
# 40 steps of a global batch of 2 x 32 MNIST digits.
nnlab train --model "${model}" --dataset mnist --optimizer sgd --lr 0.1 \
  --batch 32 --max_steps 40 --stats_every 10 --replicas 2 --watch --every 1 \
  >"${scratch}/watch" 2>&1 || {
  rc=$?
  cat "${scratch}/watch" >&2
  logs
  fail "nnlab train exited ${rc}"
}
grep -E '^(state|job) ' "${scratch}/watch" || true
grep -q COMPLETED "${scratch}/watch" || { cat "${scratch}/watch" >&2; logs; fail "the 2-replica job did not complete"; }

job="$(awk '/^job / {sub(":", "", $2); print $2; exit}' "${scratch}/watch")"
nnlab --json jobs get "${job}" | tr -d ' \n' >"${scratch}/job.json"
grep -q '"replicaMembers":\["coordinator","worker-1"\]' "${scratch}/job.json" ||
  { cat "${scratch}/job.json" >&2; fail "job ${job} did not run on the coordinator and the worker"; }

# Every step event of a distributed job carries its allreduce time.
awk '/^step / {
    ms = ""
    for (i = 1; i < NF; ++i) if ($i == "allreduce") { ms = $(i + 1); sub("ms", "", ms) }
    if (ms == "") { print "no allreduce time in: " $0 > "/dev/stderr"; exit 1 }
    print ms + 0
  }' "${scratch}/watch" | sort -g >"${scratch}/comm_ms" || fail "step events without an allreduce time"
n="$(wc -l <"${scratch}/comm_ms")"
((n > 0)) || { cat "${scratch}/watch" >&2; fail "no step events"; }
median="$(sed -n "$(((n + 1) / 2))p" "${scratch}/comm_ms")"
fastest="$(head -1 "${scratch}/comm_ms")"
echo "steps seen ${n}; allreduce median ${median} ms, fastest ${fastest} ms"
if ((delay_ms > 0)); then
  # An allreduce of two ranks needs at least one message each way.
  awk -v f="${fastest}" -v rtt=$((2 * delay_ms)) 'BEGIN { exit !(f >= rtt) }' ||
    fail "an allreduce took ${fastest} ms, under the link's ${delay_ms} ms x 2 round trip"
fi
echo "netns_test: 2-replica job across two namespaces completed"
