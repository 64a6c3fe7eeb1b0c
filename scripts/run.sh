#!/usr/bin/env bash
# Set up, index the default corpus (incremental: nothing to do when unchanged), serve UI + API.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/rag index "$@"
exec .venv/bin/rag serve
