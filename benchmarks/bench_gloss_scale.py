"""The English gloss channel at 1k / 10k / 100k paragraphs: build time, memory, disk, question cost.

    .venv/bin/python benchmarks/bench_gloss_scale.py [--sizes 1000,10000,100000] [--queries 100]

Text only, no model: each size is the real paragraphs of drcd/dev, cmrc2018/dev and
xquad/zh-dev (1,998) plus synthetic ones made as ``bench_scale.py`` makes its text (6-14
sentences drawn from two random real paragraphs, shuffled; seed 0). For each size, in a fresh
process:

* build: the gloss documents (``Glosser.terms_many``: OpenCC, jieba, CC-CEDICT, glossary) and
  the bm25s index, wall and CPU seconds, and the peak RSS it adds;
* disk: the saved ``gloss/`` folder; open: ``GlossIndex.load`` (memory-mapped) and its RSS;
* a question: the gloss stage of ``HybridRetriever._with_gloss`` (the question's terms, BM25 of
  every paragraph, the 100 best joining 200 candidate paragraphs) for 100 real English questions
  of xquad/en-zh-dev (the ones bench_scale.py asks), p50 / p95 over 3 passes;
* the dense re-scoring of the paragraphs that only the gloss adds (their chunk and sentence
  rows: float16 -> float32, one matrix product, as ``_components`` does), measured on random
  rows of the real shape (12 rows a paragraph, 384 dimensions) for the count actually added.

The full-system delta (search with and without the channel on a real index) is in
``bench_scale.py`` ("English questions: retrieval p50 ms with / without the gloss channel").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXTERNAL = Path(os.environ.get("RAG_EXTERNAL_DIR", ROOT.parent / "shared" / "data" / "external"))
REAL_SETS = ("drcd/dev", "cmrc2018/dev", "xquad/zh-dev")
SEED = 0
_SENT = re.compile(r"[^。！？!?]+[。！？!?]?")


def jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def corpus(size: int) -> list[str]:
    real = [r["text"] for name in REAL_SETS for r in jsonl(EXTERNAL / name / "corpus.jsonl")]
    if size <= len(real):
        return random.Random(SEED).sample(real, size)
    rng = random.Random(SEED + size)
    sents = [[s for s in _SENT.findall(t) if s.strip()] for t in real]
    sources = [s for s in sents if len(s) >= 2]
    out = list(real)
    while len(out) < size:
        a, b = rng.sample(sources, 2)
        pool = a + b
        picked = rng.sample(pool, min(len(pool), rng.randint(6, 14)))
        out.append("".join(picked))
    return out


def questions(n: int) -> list[str]:
    qs = jsonl(EXTERNAL / "xquad/en-zh-dev" / "queries.jsonl")
    return [q["question"] for q in random.Random(SEED).sample(qs, min(n, len(qs)))]


def measure(size: int, n_queries: int) -> dict:
    from rag.config import get_settings
    from rag.index.gloss import Glosser, GlossIndex, build_glossary, load_senses
    from rag.text.normalise import Normaliser
    from rag.text.sentences import question_terms

    texts = corpus(size)
    norm = Normaliser("t2s")
    cache_dir = get_settings().cache_dir
    load_senses(cache_dir)
    norm.tokenise("預熱")  # jieba's dictionary, loaded once per process in the product too
    rss0, peak0 = rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), time.process_time()
    glossary, mined = build_glossary([], texts, norm, None)
    glosser = Glosser(norm, glossary, cache_dir=cache_dir)
    terms = glosser.terms_many(texts)
    t1 = time.perf_counter()
    index = GlossIndex.build(terms, glosser.config(), {})
    t2, c2 = time.perf_counter(), time.process_time()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp))
        disk = sum(p.stat().st_size for p in (Path(tmp) / "gloss").iterdir()) / 1e6
        del index, terms
        rss_before_open = rss_mb()
        t3 = time.perf_counter()
        loaded = GlossIndex.load(Path(tmp))
        open_s = time.perf_counter() - t3
        qs = questions(n_queries)
        rng = np.random.default_rng(SEED)
        stage, added = [], []
        for _ in range(3):
            for q in qs:
                cands = np.unique(rng.integers(0, size, 200))
                t = time.perf_counter()
                g_terms = question_terms(q)
                scores = loaded.scores(g_terms)
                depth = min(100, len(scores))
                top = np.argpartition(-scores, depth - 1)[:depth]
                paras = np.union1d(cands, top[scores[top] > 0])
                _ = scores[paras]
                stage.append((time.perf_counter() - t) * 1000)
                added.append(len(paras) - len(cands))
        rss_open = rss_mb() - rss_before_open
    # Dense re-scoring of the paragraphs the gloss adds: ~12 rows each (chunks + sentences).
    rows = np.random.default_rng(1).standard_normal((int(np.median(added)) * 12, 384)).astype(np.float16)
    v = np.random.default_rng(2).standard_normal(384).astype(np.float32)
    rescore = []
    for _ in range(200):
        t = time.perf_counter()
        _ = rows.astype(np.float32) @ v
        rescore.append((time.perf_counter() - t) * 1000)
    return {
        "size": size, "mined_pairs": len(mined), "terms_s": round(t1 - t0, 1), "bm25_build_s": round(t2 - t1, 1),
        "build_s": round(t2 - t0, 1), "build_cpu_s": round(c2 - c0, 1),
        "build_ms_per_paragraph": round((t2 - t0) * 1000 / size, 3),
        "build_rss_added_mb": round(max(peak - peak0, rss_mb() - rss0), 1), "disk_mb": round(disk, 1),
        "open_s": round(open_s, 3), "open_rss_mb": round(rss_open, 1),
        "stage_ms_p50": pct(stage, 50), "stage_ms_p95": pct(stage, 95),
        "added_paragraphs_p50": float(np.median(added)), "rescore_added_ms_p50": pct(rescore, 50),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.queries)))
        return
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        print(f"size {size} ...", file=sys.stderr, flush=True)
        out = subprocess.run([sys.executable, __file__, "--one", str(size), "--queries", str(args.queries)],
                             capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = [
        ("build s (CPU s): gloss documents + bm25s", lambda r: f"{r['build_s']} ({r['build_cpu_s']}): {r['terms_s']} + {r['bm25_build_s']}"),
        ("build ms per paragraph", lambda r: r["build_ms_per_paragraph"]),
        ("build: RSS added MiB", lambda r: r["build_rss_added_mb"]),
        ("mined Chinese(English) pairs", lambda r: r["mined_pairs"]),
        ("gloss/ on disk MB", lambda r: r["disk_mb"]),
        ("open (memory-mapped) s / RSS after questions MiB", lambda r: f"{r['open_s']} / {r['open_rss_mb']}"),
        ("question: gloss stage p50 / p95 ms", lambda r: f"{r['stage_ms_p50']} / {r['stage_ms_p95']}"),
        ("  paragraphs the gloss adds to 200 candidates (p50)", lambda r: r["added_paragraphs_p50"]),
        ("  their dense re-scoring p50 ms", lambda r: r["rescore_added_ms_p50"]),
        ("load average at the end", lambda r: " ".join(map(str, r["load"]))),
    ]
    print("\n| | " + " | ".join(f"{r['size']:,}" for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    for name, f in rows:
        print(f"| {name} | " + " | ".join(str(f(r)) for r in results) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
