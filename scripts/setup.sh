#!/usr/bin/env bash
# Prepares a Debian 12 machine for nnlab: installs the Debian packages it
# builds and tests with (only when one is missing; apt-get runs via sudo
# when not root), then fetches the data sets (scripts/fetch_data.sh).
# Safe to run again: a second run changes nothing.
#
# Usage: scripts/setup.sh [--no-test-tools]
#   --no-test-tools  leaves out what only the tests use (the browser,
#                    Prometheus, clang's fuzzing runtime, pytest, the ONNX
#                    checker and ONNX Runtime): enough to
#                    build nnlabd, nnlab and run the core tests, as the
#                    Docker image's build stage does.
set -euo pipefail

test_tools=1
case "${1:-}" in
  "") ;;
  --no-test-tools) test_tools=0 ;;
  *) echo "usage: scripts/setup.sh [--no-test-tools]" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

packages=(
  build-essential cmake ninja-build ccache git pkg-config ca-certificates
  libgrpc-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
  protobuf-compiler libabsl-dev libopenblas-dev libdnnl-dev libgtest-dev
  libgmock-dev
  # Gloo: the collective engine of data-parallel jobs (server/cluster/).
  libgloo-dev
  libbenchmark-dev libcli11-dev libpng-dev zlib1g-dev dataset-fashion-mnist
  python3-grpcio python3-grpc-tools
  # The Python package (client/python): built offline with pip and
  # setuptools, tested with pytest; python3-crc32c checksums uploads fast; numpy
  # also checks the Nielsen learning speeds in float64 (nielsen_numpy_check).
  python3-pip python3-setuptools python3-numpy python3-crc32c
  # ONNX export: the onnx.proto schema, compiled (libonnx-dev).
  libonnx-dev
  # oneDNN's CMake config looks for OpenCL (its GPU runtime), and apt-get
  # below skips libdnnl-dev's recommendation of it.
  ocl-icd-opencl-dev
  # nnlabd's HTTP port (dashboard, /metrics).
  libcpp-httplib-dev libssl-dev
  # CRC-32C of stored records and uploads with the CPU's CRC32 instruction.
  libisal-dev
  # The character corpus chars:devil (Bierce's The Devil's Dictionary).
  dict-devil
)
# Only the tests use these: the fuzz targets, the Python package's tests,
# the ONNX checker, the dashboard's browser test, the Prometheus test and
# the two-namespace cluster test.
if ((test_tools)); then
  packages+=(
    clang-14 libclang-rt-14-dev libfuzzer-14-dev python3-pytest python3-onnx
    prometheus chromium chromium-driver python3-selenium
    # The two-host cluster test: network namespaces, veth, netem (ip, tc).
    iproute2 openssl
  )
fi
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

# The dashboard's chart library, compiled into nnlabd (server/CMakeLists.txt);
# an ignored folder, so a clean clone fetches it here, never at run time.
if [[ ! -f "$repo/third_party/npm/node_modules/uplot/dist/uPlot.iife.min.js" ]]; then
  echo "setup: npm install uplot@1.6.32 into third_party/npm"
  npm install --prefix "$repo/third_party/npm" --ignore-scripts --no-audit \
    --no-fund uplot@1.6.32
fi

"$repo/scripts/fetch_data.sh"
# ONNX Runtime for the ONNX export test (npm, into .cache/npm; ~300 MB with
# every platform's library): a test tool.
if ((test_tools)); then
  "$repo/scripts/install_onnxruntime.sh" >/dev/null
fi
