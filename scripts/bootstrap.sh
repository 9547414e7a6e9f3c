#!/usr/bin/env bash
# Set up .venv in the checkout with the given extras (default: all). Idempotent: a
# second run only reinstalls when pyproject.toml changed. Sourced by scripts/demo and
# scripts/test; run it directly to just install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${1:-all}"
PYTHON="${PYTHON:-python3}"
cd "$ROOT"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "Parley needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$PYTHON" -m venv .venv
fi

stamp=".venv/.parley-installed-$EXTRAS"
want="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing parley[$EXTRAS] into .venv (the first run compiles llama-cpp-python: ~10 min on 2 cores; pip caches the wheel)"
    .venv/bin/python -m pip install -q --upgrade pip
    # A portable llama.cpp build (no -march=native), so the cached wheel runs anywhere.
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
    # silero-vad declares a torch dependency (GBs of CUDA wheels); Parley only uses its
    # ONNX model through onnxruntime, so it is installed without dependencies.
    .venv/bin/python -m pip install -q --no-deps "silero-vad==6.2.3"
    echo "$want" > "$stamp"
fi
