#!/usr/bin/env bash
# Set up, index the default corpus (incremental: nothing to do when unchanged), serve UI + API.
# RAG_LLM=local also sets up the offline language model (scripts/setup.sh --llm).
set -euo pipefail
cd "$(dirname "$0")/.."
llm=$( (grep -s '^RAG_LLM=' .env || true) | tail -1 | cut -d= -f2- | tr -d '"'"'"' ')
if [ "${RAG_LLM:-$llm}" = "local" ]; then
  bash scripts/setup.sh --llm
else
  bash scripts/setup.sh
fi
.venv/bin/rag index "$@"
exec .venv/bin/rag serve
