"""Ingest throughput on FAISS vs Milvus Lite: ``build_index`` on the same corpora, back to back.

    .venv/bin/python benchmarks/bench_ingest_stores.py [--sizes 1000,10000] [--work /tmp/rag-bench]

Uses the corpora and private embedding caches that ``bench_scale.py`` made in ``--work``
(every vector is in the cache, so nothing is encoded: this times ingest, cleaning, chunking,
tokenising, the store's writes and the data folder). Each build goes into a fresh folder that
is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("RAG_BENCH_DIR", "/tmp/rag-bench")))
    args = ap.parse_args()
    from rag.config import get_settings
    from rag.index.build import build_index

    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        corpus, cache = args.work / f"corpus-{size}", args.work / f"cache-{size}"
        if not corpus.exists():
            sys.exit(f"{corpus} is missing: run benchmarks/bench_scale.py --build-only --sizes {size} first")
        for store in ("faiss", "milvus"):
            out = args.work / f"ingest-{store}-{size}"
            shutil.rmtree(out, ignore_errors=True)
            settings = get_settings().model_copy(update={"cache_dir": cache, "store": store})
            t0, c0 = time.perf_counter(), time.process_time()
            summary = build_index([corpus], out, settings)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            rows.append((size, store, summary.chunks, summary.encoded, wall, cpu, summary.paragraphs / wall, os.getloadavg()[0]))
            shutil.rmtree(out, ignore_errors=True)
    print("| paragraphs | store | chunks (rows in the store) | encoded | build s | CPU s | paragraphs/s | load |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for size, store, chunks, enc, wall, cpu, rate, ld in rows:
        print(f"| {size:,} | {store} | {chunks:,} | {enc} | {wall:.1f} | {cpu:.1f} | {rate:.1f} | {ld:.2f} |")


if __name__ == "__main__":
    main()
