#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), configures
# build/ with Ninja, builds everything and runs every test (long ones too).
# Exits non-zero if anything fails. NNLAB_WERROR=ON (as CI sets it) makes
# compiler warnings errors.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

"$repo/scripts/setup.sh"
cmake -S "$repo" -B "$repo/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNNLAB_WERROR="${NNLAB_WERROR:-OFF}"
cmake --build "$repo/build" -j "$(nproc)"
ctest --test-dir "$repo/build" --output-on-failure --no-tests=error \
  --no-label-summary -j2
