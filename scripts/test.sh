#!/usr/bin/env bash
# Set up, run the whole test suite, then the evaluation gate (gold set + external dev sets).
set -euo pipefail
cd "$(dirname "$0")/.."
RAG_SETUP_BROWSER=1 bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
.venv/bin/rag eval --report reports/eval
