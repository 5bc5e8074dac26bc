#!/usr/bin/env bash
# Installs ONNX Runtime for Node.js (npm's onnxruntime-node, whose CPU
# library ships inside the package) into .cache/npm of the checkout, for
# the ONNX export tests. Install scripts stay off: they would only try to
# download GPU providers. Prints the node_modules folder. A second run
# changes nothing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$repo/.cache/npm"
if [[ ! -f "$prefix/node_modules/onnxruntime-node/package.json" ]]; then
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --ignore-scripts --no-audit --no-fund \
    --loglevel=error onnxruntime-node >&2
fi
echo "$prefix/node_modules"
