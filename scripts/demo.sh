#!/usr/bin/env bash
# Demo (placeholder until the full service demo exists): installs what is
# missing (scripts/setup.sh), builds nnlab in build/, then runs the
# vanishing-gradient experiment, build/examples/vanishing_gradients, when
# that example has been built. Nothing else is shown yet.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

"$repo/scripts/setup.sh"
cmake -S "$repo" -B "$repo/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$repo/build" -j "$(nproc)"

demo="$repo/build/examples/vanishing_gradients"
if [[ -x "$demo" ]]; then
  "$demo" "$@"
else
  echo "demo: $demo is not built yet; nothing to show" >&2
fi
