#!/usr/bin/env bash
# Builds the Python classify hook as a WebAssembly component:
#   examples/hooks/retry-classifier-python/build.sh OUT_DIR
# installs componentize-py (from PyPI, into OUT_DIR/venv) on first use and
# writes OUT_DIR/retry-classifier-python.wasm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
version=0.25.1
# Installed again when the version asked for changes.
if [ "$(cat "$out/venv/componentize-py.version" 2>/dev/null)" != "$version" ]; then
  if [ ! -x "$out/venv/bin/pip" ] && ! python3 -m venv "$out/venv" >/dev/null 2>&1; then
    # Debian keeps venv apart from python3.
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv >&2
    python3 -m venv "$out/venv"
  fi
  # Wheels only: nothing is built, no setup script runs.
  "$out/venv/bin/pip" install -q --only-binary=:all: "componentize-py==$version"
  echo "$version" >"$out/venv/componentize-py.version"
fi
cd "$here"
# No bytecode beside the sources.
PYTHONDONTWRITEBYTECODE=1 "$out/venv/bin/componentize-py" -d "$root/wit" -w classify-hook componentize app \
  -o "$out/retry-classifier-python.wasm" >/dev/null
echo "$out/retry-classifier-python.wasm"
