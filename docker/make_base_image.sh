#!/usr/bin/env bash
# Builds the local base image localhost/debian:bookworm (Debian 12 minbase)
# with debootstrap, for machines that reach the Debian mirror but no container
# registry. The host's apt sources are copied in, so apt inside the image
# uses the same mirror. Skips the work when the image already exists.
#
# Usage: docker/make_base_image.sh [IMAGE]   (default localhost/debian:bookworm)
set -euo pipefail

image="${1:-localhost/debian:bookworm}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=docker/podman_env.sh
source "${here}/podman_env.sh"
nnlab_podman_setup

if podman image exists "${image}"; then
  echo "base image ${image} present, reusing it"
  exit 0
fi

# The first deb822 URIs line is the main Debian archive.
sources=/etc/apt/sources.list.d/debian.sources
mirror="$(awk '/^URIs:/ {print $2; exit}' "${sources}" 2>/dev/null || true)"
mirror="${mirror:-http://deb.debian.org/debian}"

rootfs="$(mktemp -d /var/tmp/nnlab-rootfs.XXXXXX)"
trap 'rm -rf "${rootfs}"' EXIT

start=${SECONDS}
echo "debootstrap bookworm from ${mirror}"
debootstrap --variant=minbase bookworm "${rootfs}" "${mirror}" \
  >"${rootfs}.log" 2>&1 || { tail -30 "${rootfs}.log"; rm -f "${rootfs}.log"; exit 1; }
rm -f "${rootfs}.log"

# Same apt sources as the host (including security and updates suites).
rm -f "${rootfs}/etc/apt/sources.list"
if [[ -f "${sources}" ]]; then
  cp "${sources}" "${rootfs}/etc/apt/sources.list.d/debian.sources"
elif [[ -f /etc/apt/sources.list ]]; then
  cp /etc/apt/sources.list "${rootfs}/etc/apt/sources.list"
fi
# A container image carries no apt lists or caches.
rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin \
  "${rootfs}"/var/cache/apt/archives/*.deb

tar --numeric-owner -C "${rootfs}" -c . |
  podman import --quiet --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "${image}" >/dev/null
echo "base image ${image} built in $((SECONDS - start)) s"
