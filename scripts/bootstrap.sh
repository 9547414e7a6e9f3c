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
# Debian packages the edge's sound code and its tests need: PortAudio (sounddevice) and
# PulseAudio with a null sink (tests/edge plays and records through it). Installed only
# when missing, and only where we may (root, or sudo without a password); silent when
# everything is there.
SOUND_PACKAGES="libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins"
if command -v dpkg-query >/dev/null 2>&1; then
    missing=""
    for package in $SOUND_PACKAGES; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $package"
    done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" -eq 0 ]; then
            as_root=""
        elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root="sudo -n"
        else
            as_root="-"
        fi
        if [ "$as_root" = "-" ]; then
            echo "==> note: missing Debian packages:$missing (the sound tests will be skipped);" \
                "install them with: sudo apt-get install$missing" >&2
        else
            echo "==> installing Debian packages:$missing"
            # shellcheck disable=SC2086  # word splitting wanted: a command and a package list
            if ! apt_log="$($as_root apt-get update -qq 2>&1 &&
                DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq \
                    --no-install-recommends $missing 2>&1)"; then
                echo "$apt_log" | tail -5 >&2
                echo "==> warning: could not install$missing (the sound tests will be skipped)" >&2
            fi
        fi
    fi
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

# ---- admin browser test: Debian's chromium (dev set-up only) -----------------------
# tests/admin/test_browser.py drives /usr/bin/chromium through Playwright (never
# `playwright install`: no browser downloads). Installed only for `dev`, only when
# missing, and only as root; otherwise that one test is skipped with the reason.
if [ "$EXTRAS" = "dev" ] && [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "==> installing Debian's chromium (for the admin's browser test)"
        if ! chromium_log="$(apt-get update -qq 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium 2>&1)"; then
            echo "$chromium_log" | tail -5 >&2
            echo "==> warning: could not install chromium (the browser test will be skipped)" >&2
        fi
    else
        echo "==> note: /usr/bin/chromium is missing (the admin's browser test will be" \
            "skipped); install it with: sudo apt-get install chromium" >&2
    fi
fi
# ---- end of the admin browser test block -------------------------------------------

# ---- PostgreSQL for the store/admin tests (dev set-up only) -------------------------
# tests/conftest.py starts a throwaway PostgreSQL cluster (initdb in a temporary
# directory, as an unprivileged account) so the store, span and admin tests also run on
# PostgreSQL. Debian's postgresql-15 is installed only for `dev`, only when no initdb is
# found, and only as root; otherwise those tests are skipped with the reason.
if [ "$EXTRAS" = "dev" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    && ! command -v initdb >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "==> installing Debian's postgresql-15 (for the PostgreSQL tests)"
        if ! pg_log="$(apt-get update -qq 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                postgresql-15 2>&1)"; then
            echo "$pg_log" | tail -5 >&2
            echo "==> warning: could not install postgresql-15 (the PostgreSQL tests will be" \
                "skipped)" >&2
        fi
    else
        echo "==> note: PostgreSQL is missing (the PostgreSQL tests will be skipped);" \
            "install it with: sudo apt-get install postgresql-15" >&2
    fi
fi
# ---- end of the PostgreSQL block ----------------------------------------------------
