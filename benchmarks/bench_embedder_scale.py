"""What an embedder's vector width costs at 1k / 10k / 100k paragraphs: build time, memory and
the vector part of a search, for 384-d (multilingual-e5-small) and 768-d (EmbeddingGemma-300M).

    .venv/bin/python benchmarks/bench_embedder_scale.py [--sizes 1000,10000,100000] [--queries 200]

Synthetic vectors (as ``bench_scale.py`` uses for its size rows): each paragraph gets a random
unit "topic" vector; its chunks (1.3 a paragraph, the dev sets' mean) and sentences (10 a
paragraph) are the topic plus seeded noise, re-normalised, and each query is a noisy copy of one
paragraph's vector. The rows are stored as the product stores them: chunks in the FAISS store
(``rag.store.faiss_store.FaissStore``: exact below ``RAG_HNSW_THRESHOLD`` rows, HNSW above),
sentences as a float16 matrix that a search re-scores for the 100 candidate paragraphs. Timed: the
store's build, the 100-candidate search, the sentence re-scoring; memory: the store's vectors
and the sentence matrix. What does not depend on the model (BM25, the gloss, fusion) is in
``bench_scale.py``; the question's encoding, which does, is in ``bench_encoder.py`` /
``bench_gemma_speed.py``. A search's total is about their sum.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNKS_PER_PARAGRAPH = 1.3
SENTENCES_PER_PARAGRAPH = 10
CANDIDATES = 100


def unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


def measure(size: int, dim: int, queries: int, rng: np.random.Generator) -> dict:
    import faiss

    from rag.store.faiss_store import FaissStore

    topics = unit(rng.standard_normal((size, dim), dtype=np.float32))
    n_chunks = int(size * CHUNKS_PER_PARAGRAPH)
    chunk_para = np.sort(np.concatenate([np.arange(size), rng.integers(0, size, n_chunks - size)]))
    chunks = unit(topics[chunk_para] + 0.6 * unit(rng.standard_normal((n_chunks, dim), dtype=np.float32)))
    sent_para = np.repeat(np.arange(size), SENTENCES_PER_PARAGRAPH)
    sentences = np.empty((len(sent_para), dim), dtype=np.float16)
    for a in range(0, len(sent_para), 100_000):  # in parts: 1M x 768 float32 noise would be 3 GB
        part = sent_para[a : a + 100_000]
        sentences[a : a + len(part)] = unit(topics[part] + 0.9 * unit(rng.standard_normal((len(part), dim),
                                                                                             dtype=np.float32)))
    asked = rng.integers(0, size, queries)
    qv = unit(topics[asked] + 0.7 * unit(rng.standard_normal((queries, dim), dtype=np.float32)))

    faiss.omp_set_num_threads(2)
    t = time.perf_counter()
    store = FaissStore(dim)
    ids = [f"c{i}" for i in range(n_chunks)]
    store.add(ids, [f"d{p}" for p in chunk_para], chunks)
    store.search_rows(chunks[:1], 1)  # the graph or flat index is built on first use
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        store.save(Path(tmp))
        disk = sum(p.stat().st_size for p in Path(tmp).iterdir())
    offsets = np.arange(0, len(sent_para) + 1, SENTENCES_PER_PARAGRAPH)
    search_ms, rescore_ms, hits = [], [], 0
    for i in range(queries):
        q = qv[i]
        t = time.perf_counter()
        _, rows = store.search_rows(q[None, :], CANDIDATES)
        t2 = time.perf_counter()
        paras = np.unique(chunk_para[rows[0][rows[0] >= 0]])
        srows = np.concatenate([np.arange(offsets[p], offsets[p + 1]) for p in paras])
        scos = sentences[srows].astype(np.float32) @ q
        best = paras[int(np.argmax(scos)) // SENTENCES_PER_PARAGRAPH] if len(paras) else -1
        t3 = time.perf_counter()
        search_ms.append((t2 - t) * 1000)
        rescore_ms.append((t3 - t2) * 1000)
        hits += int(best == asked[i])
    return {
        "paragraphs": size, "dim": dim, "chunk_rows": n_chunks, "sentence_rows": len(sent_para),
        "index": "HNSW" if store.approximate else "exact",
        "build_s": build_s, "store_mib": disk / 2**20, "sentences_mib": sentences.nbytes / 2**20,
        "search_p50_ms": float(np.percentile(search_ms, 50)), "search_p95_ms": float(np.percentile(search_ms, 95)),
        "rescore_p50_ms": float(np.percentile(rescore_ms, 50)), "rescore_p95_ms": float(np.percentile(rescore_ms, 95)),
        "sanity_top1": hits / queries,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--dims", default="384,768")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for dim in (int(d) for d in args.dims.split(",")):
            r = measure(size, dim, args.queries, np.random.default_rng(0))
            rows.append(r)
            print(json.dumps(r), flush=True)
    print("\n| paragraphs | dim | store | build (s) | chunk vectors (MiB) | sentence vectors (MiB) | "
          "vector search p50 / p95 (ms) | sentence re-scoring p50 / p95 (ms) |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['paragraphs']:,} | {r['dim']} | {r['index']} | {r['build_s']:.2f} | {r['store_mib']:.0f} | "
              f"{r['sentences_mib']:.0f} | {r['search_p50_ms']:.2f} / {r['search_p95_ms']:.2f} | "
              f"{r['rescore_p50_ms']:.2f} / {r['rescore_p95_ms']:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
