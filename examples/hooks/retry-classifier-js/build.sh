#!/usr/bin/env bash
# Builds the JavaScript classify hook as a WebAssembly component:
#   examples/hooks/retry-classifier-js/build.sh OUT_DIR
# installs componentize-js (from npm, pinned by package-lock.json, into
# OUT_DIR/node_modules) on first use and writes
# OUT_DIR/retry-classifier-js.wasm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
if ! command -v npm >/dev/null; then
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm >&2
fi
if ! cmp -s "$here/package-lock.json" "$out/package-lock.json" \
  || [ ! -x "$out/node_modules/.bin/componentize-js" ]; then
  cp "$here/package.json" "$here/package-lock.json" "$out/"
  # None of these packages needs an install script; none is run.
  (cd "$out" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
fi
"$out/node_modules/.bin/componentize-js" "$here/app.js" --wit "$root/wit" \
  --world-name classify-hook --disable http fetch-event \
  -o "$out/retry-classifier-js.wasm" >/dev/null
echo "$out/retry-classifier-js.wasm"
