# Sourced by the container scripts: installs podman and friends from Debian
# when missing and points podman at docker/containers.conf.
# shellcheck shell=bash

nnlab_podman_setup() {
  local missing=()
  local cmd
  for cmd in podman buildah runc debootstrap; do
    command -v "${cmd}" >/dev/null 2>&1 || missing+=("${cmd}")
  done
  if ((${#missing[@]})); then
    local sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    echo "installing ${missing[*]} (Debian packages)" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
      podman buildah runc debootstrap >/dev/null
  fi
  CONTAINERS_CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf"
  export CONTAINERS_CONF
}
