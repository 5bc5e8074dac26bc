#!/usr/bin/env bash
# CI stage for the deployment: builds docker/Dockerfile with podman on a
# locally made Debian 12 base image, runs the image the way a deployment
# would (non-root, --read-only, --cap-drop=ALL, a writable data volume, a
# loopback port), drives it from the host's `nnlab` CLI, checks a clean
# SIGTERM shutdown and that the volume keeps the model across a restart, runs
# a 2-replica job on a coordinator and two workers (docker/test_cluster.sh),
# lints the Dockerfile, then clones the repository into a plain Debian 12
# container and runs the README's test command there (a fresh machine: a
# missing install step cannot hide behind what this host already has).
#
# Usage: docker/test_container.sh
# Environment:
#   NNLAB_FRESH_CHECK=full   fresh container runs scripts/test.sh (default)
#                    quick   fresh container runs setup + build + core tests
#                    skip    no fresh-container run
#   NNLAB_CLI=PATH           host CLI (default build/client/nnlab, built if
#                            missing)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
here="${repo}/docker"
base=localhost/debian:bookworm
image=localhost/nnlab:test
fresh_mode="${NNLAB_FRESH_CHECK:-full}"
host_ca=/etc/ssl/certs/ca-certificates.crt
run_id="nnlab-ci-$$"

# shellcheck source=docker/podman_env.sh
source "${here}/podman_env.sh"
nnlab_podman_setup

t0=${SECONDS}
declare -a timings=()
lap() { timings+=("$1: $((SECONDS - t0)) s"); t0=${SECONDS}; }
say() { echo "== container: $*"; }
fail() { echo "container test FAILED: $*" >&2; exit 1; }

containers=()
volumes=()
scratch=""
out="$(mktemp)"
cleanup() {
  rm -f "${out}"
  local c v
  for c in "${containers[@]}"; do podman rm -f -t 0 "${c}" >/dev/null 2>&1 || true; done
  for v in "${volumes[@]}"; do podman volume rm -f "${v}" >/dev/null 2>&1 || true; done
  [[ -z "${scratch}" ]] || rm -rf "${scratch}"
}
trap cleanup EXIT

# Mounts the host's CA bundle for npm (TLS-inspecting proxy) when present.
ca_args=()
if [[ -f "${host_ca}" ]]; then
  ca_args=(-v "${host_ca}:/etc/ssl/host-ca.crt:ro")
fi

# This host's compiler cache, lent read-only to the builds in containers.
# Hits need identical compile commands, so those builds use this checkout's
# path; a hit still needs every header present inside the container, so the
# cache cannot hide a missing package.
host_cache="$(ccache -k cache_dir 2>/dev/null || true)"
[[ -n "${host_cache}" && -d "${host_cache}" ]] || host_cache=""
cache_mount=/var/cache/nnlab-host-ccache
# ccache also hashes the locale variables: the builds inside get this host's.
# NNLAB_WERROR goes in too, since -Werror is part of every compile command.
werror="${NNLAB_WERROR:-OFF}"
locale_vars=()
for v in LANG LC_ALL LC_CTYPE LC_MESSAGES; do
  [[ -z "${!v:-}" ]] || locale_vars+=("${v}=${!v}")
done

# --- base image --------------------------------------------------------------
say "base image"
"${here}/make_base_image.sh" "${base}"
lap "base image"

# --- image build (build stage runs the core unit tests) ----------------------
say "building ${image}"
build_args=(--format docker --build-arg "BASE=${base}" --build-arg "NNLAB_WERROR=${werror}"
  -f "${here}/Dockerfile" -t "${image}")
if ((${#ca_args[@]})); then
  build_args+=("${ca_args[@]}" --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca.crt)
fi
if [[ -n "${host_cache}" ]]; then
  build_args+=(-v "${host_cache}:${cache_mount}:ro" --build-arg "SRC_DIR=${repo}"
    --build-arg "CCACHE_DIR=${cache_mount}" --build-arg CCACHE_READONLY=true
    --build-arg CCACHE_TEMPDIR=/tmp/ccache-tmp)
  for v in "${locale_vars[@]}"; do build_args+=(--build-arg "${v}"); done
fi
podman build "${build_args[@]}" "${repo}"
size_bytes="$(podman image inspect --format '{{.Size}}' "${image}")"
size_mb=$(((size_bytes + 500000) / 1000000))
lap "image build"

# --- lint ----------------------------------------------------------------------
say "dockerfilelint"
# Findings fail the stage; a linter that cannot be installed only warns.
lint_dir="$(mktemp -d)"
if [[ -z "${NODE_EXTRA_CA_CERTS:-}" && -f "${host_ca}" ]]; then
  export NODE_EXTRA_CA_CERTS="${host_ca}"
fi
if command -v npm >/dev/null 2>&1 &&
  npm install --silent --no-audit --no-fund --prefix "${lint_dir}" \
    dockerfilelint@1.8.0 >/dev/null 2>&1; then
  "${lint_dir}/node_modules/.bin/dockerfilelint" -c "${here}" "${here}/Dockerfile" ||
    fail "dockerfilelint findings"
else
  echo "warning: could not install dockerfilelint from npm; lint skipped" >&2
fi
rm -rf "${lint_dir}"
lap "lint"

# --- run the image -------------------------------------------------------------
cli="${NNLAB_CLI:-${repo}/build/client/nnlab}"
if [[ ! -x "${cli}" ]]; then
  say "building the host CLI"
  "${repo}/scripts/setup.sh" --no-test-tools >/dev/null  # uPlot for nnlabd's HTTP port
  cmake -S "${repo}" -B "${repo}/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "${repo}/build" -j "$(nproc)" --target nnlab
fi

port="$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
server="127.0.0.1:${port}"
volume="${run_id}-data"
podman volume create "${volume}" >/dev/null
volumes+=("${volume}")

# Starts a server container named $1 on the data volume; waits until healthy.
# (Without systemd podman cannot schedule the image's HEALTHCHECK and logs
# errors saying so; the check is run explicitly below instead.)
start_server() {
  local name="$1" i err=""
  podman run -d --name "${name}" \
    --read-only --read-only-tmpfs=false --cap-drop=ALL \
    --security-opt no-new-privileges \
    -p "${server}:50051" -v "${volume}:/data" "${image}" >/dev/null
  containers+=("${name}")
  # Generous: on a loaded machine the port forwarding can take a while.
  for ((i = 0; i < 240; i++)); do
    if err="$("${cli}" --server "${server}" --timeout 5 health 2>&1)"; then
      return 0
    fi
    if [[ "$(podman inspect -f '{{.State.Running}}' "${name}")" != true ]]; then
      podman logs "${name}" >&2 || true
      fail "${name} exited during start-up"
    fi
    sleep 0.5
  done
  podman logs "${name}" >&2 || true
  fail "${name} not healthy after 120 s (last health check: ${err})"
}

# Stops container $1 with SIGTERM and a 10 s grace; the server must exit 0.
stop_server() {
  local name="$1" start=${SECONDS} code
  podman stop -t 10 "${name}" >/dev/null || fail "podman stop ${name}"
  code="$(podman inspect -f '{{.State.ExitCode}}' "${name}")"
  if [[ "${code}" != 0 ]]; then
    podman logs "${name}" >&2 || true
    fail "${name} exited with status ${code} on SIGTERM (after $((SECONDS - start)) s)"
  fi
  echo "${name} stopped cleanly (exit 0) in $((SECONDS - start)) s"
}

say "running ${image} on ${server} (non-root, read-only, no capabilities)"
start_server "${run_id}-1"
uid="$(podman exec "${run_id}-1" id -u)"
[[ "${uid}" != 0 ]] || fail "server runs as root"
say "the image's Python client"
podman exec "${run_id}-1" python3 -c \
  'import nnlab; assert nnlab.Client("127.0.0.1:50051").health() == "SERVING"' ||
  fail "the Python client in the image cannot reach its server"
echo "server runs as uid ${uid}"
podman healthcheck run "${run_id}-1" || fail "image HEALTHCHECK reports unhealthy"
echo "image HEALTHCHECK: healthy"

nnlab() { "${cli}" --server "${server}" --timeout 60 "$@"; }

say "a short training job and an inference, from the host CLI"
model="$(nnlab models create -q --spec "${repo}/examples/mnist_mlp_100.textproto")"
[[ "${model}" =~ ^[A-Za-z0-9_.-]+$ ]] || fail "models create printed '${model}'"
# One epoch of the 8,000 training digits: 250 mini-batches of 32.
nnlab train --model "${model}" --dataset mnist --optimizer sgd --lr 0.1 \
  --batch 32 --epochs 1 --eval_every 125 --stats_every 25 --watch |
  tee "${out}" | grep -E '^(eval|state|job) '
grep -q "COMPLETED" "${out}" || fail "training job did not complete"
# The container's data sets are the same files as the host's data/ (one
# checksum list), so the host CLI sends the test digits it reads locally
# (fetched here if this checkout has none yet; quick when it has).
"${repo}/scripts/fetch_data.sh" >/dev/null
nnlab infer --model "${model}" --dataset mnist:test --limit 500 |
  tee "${out}" | tail -1
accuracy="$(awk '/^accuracy/ {print $2}' "${out}")"
awk -v a="${accuracy:-0}" 'BEGIN { exit !(a >= 0.8) }' ||
  fail "inference accuracy ${accuracy:-?} after one epoch, expected >= 0.8"
echo "model ${model}: test accuracy ${accuracy} on 500 digits"

stop_server "${run_id}-1"
say "restarting on the same volume"
start_server "${run_id}-2"
nnlab models list | grep -q "^${model} " ||
  fail "model ${model} missing after a restart on the same volume"
nnlab infer --model "${model}" --dataset mnist:test --limit 500 |
  grep -q "^accuracy ${accuracy} " ||
  fail "model ${model} answers differently after the restart"
echo "model ${model} still listed after the restart, same test accuracy"
stop_server "${run_id}-2"
lap "container run checks"

# --- a cluster: coordinator + two workers (compose.yaml's "cluster" profile) --
say "cluster of three containers"
"${here}/test_cluster.sh" "${image}" "${cli}"
lap "cluster"

# --- a fresh machine -----------------------------------------------------------
run_fresh() {
  local commit clone_dir cmd
  commit="$(git -C "${repo}" rev-parse HEAD)"
  scratch="$(mktemp -d /var/tmp/nnlab-fresh.XXXXXX)"
  # The clone is mounted at this checkout's path (see host_cache above).
  clone_dir="${scratch}/clone"
  git clone -q --no-hardlinks "${repo}" "${clone_dir}"
  git -C "${clone_dir}" checkout -q "${commit}"
  local cache_args=()
  if [[ -n "${host_cache}" ]]; then
    cache_args=(-v "${host_cache}:${cache_mount}:ro" -e "CCACHE_DIR=${cache_mount}"
      -e CCACHE_READONLY=true -e CCACHE_TEMPDIR=/tmp/ccache-tmp)
    for v in "${locale_vars[@]}"; do cache_args+=(-e "${v}"); done
  fi
  case "${fresh_mode}" in
    full)
      cmd='scripts/test.sh' ;;
    quick)
      # The README's setup, the build and the core unit tests.
      cmd='scripts/setup.sh &&
        cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
          -DNNLAB_WERROR="${NNLAB_WERROR}" &&
        cmake --build build -j "$(nproc)" &&
        ctest --test-dir build --output-on-failure --no-tests=error -j2 -L core -LE long' ;;
    *) fail "NNLAB_FRESH_CHECK=${fresh_mode}: expected full, quick or skip" ;;
  esac
  say "fresh Debian 12 container: clone of ${commit:0:12}, ${fresh_mode} (${cmd%% *})"
  local env_args=()
  ((${#ca_args[@]})) && env_args=("${ca_args[@]}" -e NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca.crt)
  podman run --rm --name "${run_id}-fresh" \
    -v "${clone_dir}:${repo}" -w "${repo}" \
    "${env_args[@]}" "${cache_args[@]}" \
    -e "NNLAB_WERROR=${werror}" "${base}" bash -c "${cmd}"
}

if [[ "${fresh_mode}" != skip ]]; then
  run_fresh
  lap "fresh container (${fresh_mode})"
fi

say "runtime image ${image}: ${size_mb} MB"
say "timings: $(IFS=';'; echo "${timings[*]}")"
