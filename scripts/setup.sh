#!/usr/bin/env bash
# Prepares a Debian 12 machine for nnlab: installs the Debian packages it
# builds and tests with (only when one is missing; apt-get runs via sudo
# when not root), then fetches the data sets (scripts/fetch_data.sh).
# Safe to run again: a second run changes nothing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

packages=(
  build-essential cmake ninja-build ccache git pkg-config ca-certificates
  libgrpc-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
  protobuf-compiler libabsl-dev libopenblas-dev libdnnl-dev libgtest-dev
  libgmock-dev
  libbenchmark-dev libcli11-dev libpng-dev zlib1g-dev dataset-fashion-mnist
  python3-grpcio python3-grpc-tools
  # ONNX export: the onnx.proto schema (libonnx-dev); its tests check files
  # with python3-onnx and compare outputs with python3-numpy.
  libonnx-dev python3-onnx python3-numpy
  clang-14 libclang-rt-14-dev libfuzzer-14-dev
  # oneDNN's CMake config looks for OpenCL (its GPU runtime), and apt-get
  # below skips libdnnl-dev's recommendation of it.
  ocl-icd-opencl-dev
)
# Debian's npm conflicts with a Node.js installed from elsewhere: only bring
# Node.js and npm when there is no npm at all.
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" == ii* ]] ||
    missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [[ "$(id -u)" -eq 0 ]] || sudo=sudo
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#packages[@]} Debian packages are installed"
fi

"$repo/scripts/fetch_data.sh"
# ONNX Runtime for the ONNX export test (npm, into .cache/npm; ~300 MB with
# every platform's library, so the container build, which runs no tests,
# sets NNLAB_SKIP_ONNXRUNTIME=1).
[[ -n "${NNLAB_SKIP_ONNXRUNTIME:-}" ]] ||
  "$repo/scripts/install_onnxruntime.sh" >/dev/null
