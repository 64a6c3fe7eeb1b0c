#!/usr/bin/env bash
# Set up, index the default corpus (incremental: nothing to do when unchanged), serve UI + API.
# The offline language model is on (RAG_LLM=local: the answerability judge, extractive answers)
# unless RAG_LLM is set, in the environment or .env; RAG_LLM=off is the lean mode (no model,
# nothing to build). Its first setup builds llama.cpp (9-25 min on 2 cores) and assembles 1.1 GB
# of weights; where that fails (no compiler, a failed build) the server starts in the lean mode
# and says so on /readyz and in the chat. With RAG_LLM_BASE_URL (a shared model server) the judge
# runs on that server and nothing is built here (unless RAG_LLM_JUDGE=local).
set -euo pipefail
cd "$(dirname "$0")/.."
setting() {  # NAME: its value from the environment, else from .env, else empty
  local name=$1
  if [ -n "${!name+x}" ]; then printf '%s' "${!name}"; return; fi
  (grep -s "^$name=" .env || true) | tail -1 | cut -d= -f2- | tr -d '"'"'"' '
}
llm=$(setting RAG_LLM)
llm=${llm:-local}
if [ "$llm" = "local" ] && { [ -z "$(setting RAG_LLM_BASE_URL)" ] || [ "$(setting RAG_LLM_JUDGE)" = "local" ]; }; then
  bash scripts/setup.sh --llm-optional
else
  bash scripts/setup.sh
fi
.venv/bin/rag index "$@"
RAG_LLM=$llm exec .venv/bin/rag serve
