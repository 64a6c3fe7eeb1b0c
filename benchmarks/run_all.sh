#!/usr/bin/env bash
# Reproduce every table in benchmarks/README.md, in one command:
#
#     bash benchmarks/run_all.sh            # results: reports/bench/*.json and *.md
#
# Needs the project's .venv (scripts/run.sh or scripts/test.sh makes it), the external dev
# data in ../shared/data/external, and the embedding cache of drcd/dev, cmrc2018/dev and
# xquad (filled by `rag eval` / benchmarks/tune_fusion.py) so nothing but the 300 paragraphs
# of the indexing benchmark is encoded. Large artefacts (synthetic corpora, their private
# caches and indexes: ~6 GB with 100k; the 100k build alone takes ~20 min on 2 shared cores) go to $RAG_BENCH_DIR (default /tmp/rag-bench).
# Haystack runs from its own virtualenv ($RAG_PEER_PYTHON, default /tmp/rag-peers-venv);
# it is created here when missing, never inside the project's environment.
#
# Knobs: SIZES (default 1000,10000,100000), UPDATE_SIZES (default 10000,100000), MILVUS_SIZES (default 1000,10000), MILVUS_QUERIES (default 50), QUERIES (scale, default 300), PEER_QUERIES
# (per set, default 300), LOAD_SECONDS / LOAD_CLIENTS (load test, default 30 / "1 4 16").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=reports/bench
WORK=${RAG_BENCH_DIR:-/tmp/rag-bench}
PEER_VENV=$(dirname "$(dirname "${RAG_PEER_PYTHON:-/tmp/rag-peers-venv/bin/python}")")
export RAG_BENCH_DIR=$WORK RAG_PEER_PYTHON=$PEER_VENV/bin/python
mkdir -p "$OUT" "$WORK"

echo "== machine"
{ echo "date: $(date -u +%FT%TZ)"; echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)";
  echo "memory: $(free -g | awk '/Mem:/{print $2}') GiB"; echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)";
  $PY -c "import torch,faiss,bm25s,sentence_transformers as s;print('torch',torch.__version__,'threads',torch.get_num_threads(),'faiss',faiss.__version__,'bm25s',bm25s.__version__,'sentence-transformers',s.__version__)"
} | tee "$OUT/machine.txt"

if [ ! -x "$PEER_VENV/bin/python" ]; then
  echo "== peer virtualenv (Haystack) in $PEER_VENV"
  python3.11 -m venv "$PEER_VENV"
  "$PEER_VENV/bin/pip" install -q torch==2.13.0            # the local CPU wheel first
  "$PEER_VENV/bin/pip" install -q haystack-ai sentence-transformers-haystack sentence-transformers==6.2.0 \
    || echo "Haystack could not be installed: the peers table will lack it"
fi

echo "== encoder"
$PY benchmarks/bench_encoder.py --json "$OUT/encoder.json" | tee "$OUT/encoder.md"
$PY benchmarks/bench_encoder.py --backend sentence-transformers --json "$OUT/encoder-st.json" | tee "$OUT/encoder-st.md"
echo "== passage precision: bfloat16 vs float32, same run"
$PY benchmarks/bench_passage_dtype.py --json "$OUT/passage-dtype.json" | tee "$OUT/passage-dtype.md"
echo "== indexing overhead"
$PY benchmarks/bench_pipeline.py --json "$OUT/pipeline.json" | tee "$OUT/pipeline.md"
echo "== index updates: no-op, one document changed / added / deleted"
$PY benchmarks/bench_index_update.py --json "$OUT/index-update.json" | tee "$OUT/index-update.md"
$PY benchmarks/bench_index_update.py --sizes "${UPDATE_SIZES:-10000,100000}" --work "$WORK" \
  --json "$OUT/index-update-scale.json" | tee "$OUT/index-update-scale.md"
echo "== upload of one 20-page PDF to a running server, until a search cites it (10k paragraphs)"
$PY benchmarks/bench_upload.py --paragraphs 10000 --pages 20 --work "$WORK" \
  --json "$OUT/upload.json" | tee "$OUT/upload.md"
echo "== start-up: rag serve, and scripts/run.sh on an unchanged corpus"
.venv/bin/rag index -q >/dev/null  # index/ of corpus/, so run.sh finds it unchanged
$PY benchmarks/bench_serve_start.py --index index --json "$OUT/serve-start.json" | tee "$OUT/serve-start.md"
$PY benchmarks/bench_serve_start.py --run-sh --json "$OUT/run-sh-start.json" | tee "$OUT/run-sh-start.md"
echo "== scale"
$PY benchmarks/bench_scale.py --sizes "${SIZES:-1000,10000,100000}" --queries "${QUERIES:-300}" \
  --json "$OUT/scale.json" | tee "$OUT/scale.md"
echo "== scale on Milvus Lite (RAG_STORE=milvus), the sizes that fit one Lite file"
# (50 questions: Milvus Lite's BM25 returns every matching row, ~0.7 s a question at 10k)
$PY benchmarks/bench_scale.py --store milvus --sizes "${MILVUS_SIZES:-1000,10000}" --queries "${MILVUS_QUERIES:-50}" \
  --json "$OUT/scale-milvus.json" | tee "$OUT/scale-milvus.md"
echo "== ingest: FAISS vs Milvus Lite"
$PY benchmarks/bench_ingest_stores.py --sizes "${MILVUS_SIZES:-1000,10000}" | tee "$OUT/ingest-stores.md"
echo "== peers"
$PY benchmarks/bench_peers.py --queries "${PEER_QUERIES:-300}" --json "$OUT/peers.json" | tee "$OUT/peers.md"
echo "== HTTP under load (10k index): 1, 4 and 16 concurrent clients"
: > "$OUT/load.md"
for clients in ${LOAD_CLIENTS:-1 4 16}; do
  RAG_CACHE_DIR=$WORK/cache-10000 $PY benchmarks/load_test.py --index "$WORK/index-10000" \
    --seconds "${LOAD_SECONDS:-30}" --clients "$clients" --json "$OUT/load-$clients.json" | tee -a "$OUT/load.md"
done
if [ "${LOAD_LLM:-0}" = 1 ]; then  # the judge on every answer: needs `bash scripts/setup.sh --llm`
  echo "== HTTP under load with the local model's judge (RAG_LLM=local): 1, 4 and 8 concurrent clients"
  $PY benchmarks/load_test.py --index "$WORK/index-10000" --llm local --clients ${LOAD_LLM_CLIENTS:-1 4 8} \
    --rounds 1 --seconds "${LOAD_SECONDS:-30}" --json "$OUT/load-llm.json" | tee "$OUT/load-llm.md"
fi
echo "results in $OUT/"
