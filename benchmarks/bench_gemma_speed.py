"""EmbeddingGemma-300M on this CPU: where a question's time goes, and whether int8 holds quality.

    .venv/bin/python benchmarks/bench_gemma_speed.py [--questions 100] [--paragraphs 60] [--json FILE]

The model is the one `RAG_EMBED_MODEL=pypi:embeddinggemma-300m` loads (assembled into the cache
on first use). In one process, interleaved question by question so that every variant sees the
same machine:

* ``st``: the product's path, ``SentenceTransformerEncoder.encode`` of one question (tokenise,
  prompt, batch plan, the torch thread, pooling, the two Dense layers, normalise);
* ``forward``: only the transformer's forward pass on the already tokenised question, the floor
  that a leaner path (no sentence-transformers, as ``LeanEncoder`` does for BERT) could reach;
* ``int8``: the same encoder after ``torch.ao.quantization.quantize_dynamic`` of every Linear
  layer of a float32 copy (fbgemm; dynamic int8 activations), and its cosine to the product's
  vectors (float32, or bfloat16 on a CPU with native bfloat16).

Then dense-only retrieval quality, exact inner product, on xquad/en-zh-dev and xquad/zh-dev
(150 paragraphs, 711 questions each): the product's precision against int8 (questions and passages both), with
the paired count of questions only one of them ranks first.

``--search-sets``: a whole search through the service (``RagService.search``, k=10, each
question new to the process) with EmbeddingGemma and with the default model, each on the index
`rag eval` builds of that dev set for it (built first when missing; ``tune_fusion.external_index``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EXTERNAL = Path(os.environ.get("RAG_EXTERNAL_DIR", ROOT.parent / "shared" / "data" / "external"))


def jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--paragraphs", type=int, default=60)
    ap.add_argument("--sets", default="xquad/en-zh-dev,xquad/zh-dev")
    ap.add_argument("--search-sets", default="drcd/dev,xquad/en-zh-dev", help="'' skips the service searches")
    ap.add_argument("--searches", type=int, default=100, help="questions searched per set and model")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from rag.config import get_settings
    from rag.embedding import get_encoder
    from rag.embedding.encoder import SentenceTransformerEncoder
    from rag.modelid import GEMMA_NAME

    settings = get_settings()
    enc = get_encoder(settings, GEMMA_NAME, backend="sentence-transformers")
    assert isinstance(enc, SentenceTransformerEncoder)
    q8 = SentenceTransformerEncoder.__new__(SentenceTransformerEncoder)
    q8.__dict__.update(enc.__dict__)
    # The product's precision (bfloat16 on a CPU with native bfloat16, float32 otherwise); int8 is
    # quantised from a float32 copy (quantize_dynamic takes float32 Linear layers only).
    base = enc.query_dtype
    q8._model = torch.ao.quantization.quantize_dynamic(  # a copy: the product's model stays as it is
        __import__("copy").deepcopy(enc._model).float(), {torch.nn.Linear}, dtype=torch.qint8)
    q8.model_id = enc.model_id + "@int8"
    q8.query_dtype = q8.passage_dtype = "float32"

    en = jsonl(EXTERNAL / "xquad/en-zh-dev/queries.jsonl")
    zh = jsonl(EXTERNAL / "drcd/dev/queries.jsonl")
    questions = [q["question"] for pair in zip(en, zh, strict=False) for q in pair][: args.questions]
    transformer = enc._model[0].auto_model
    tok = enc._model.tokenizer
    prompt = enc.prompts[0]
    times: dict[str, list[float]] = {"st": [], "forward": [], "int8": []}
    cos: list[float] = []
    with torch.inference_mode():
        for q in questions[:3]:  # warm-up
            enc.encode([q], kind="query")
            q8.encode([q], kind="query")
        for q in questions:
            t = time.perf_counter()
            v = enc.encode([q], kind="query")
            times["st"].append((time.perf_counter() - t) * 1000)
            batch = tok([prompt + q], return_tensors="pt")
            t = time.perf_counter()
            transformer(**batch)
            times["forward"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            w = q8.encode([q], kind="query")
            times["int8"].append((time.perf_counter() - t) * 1000)
            cos.append(float(v[0] @ w[0]))
    paragraphs = [p["text"] for p in jsonl(EXTERNAL / "drcd/dev/corpus.jsonl")[: args.paragraphs]]
    rates = {}
    for name, e in ((base, enc), ("int8", q8)):
        t = time.perf_counter()
        e.encode(paragraphs, kind="passage")
        rates[name] = len(paragraphs) / (time.perf_counter() - t)
    out: dict = {"threads": torch.get_num_threads(), "questions": len(questions), "precision": base,
                 "latency_ms": {k: {"p50": pct(v, 50), "p95": pct(v, 95)} for k, v in times.items()},
                 "int8_cosine": {"min": min(cos), "mean": statistics.mean(cos)},
                 "paragraphs_per_s": rates, "quality": {}}
    print(f"threads {out['threads']}, the model in {base}, {len(questions)} questions (English and Traditional, interleaved)")
    print("| path | single question p50 / p95 (ms) |\n|---|---:|")
    for k, v in out["latency_ms"].items():
        print(f"| {k} | {v['p50']:.1f} / {v['p95']:.1f} |")
    print(f"int8 vs {base} question cosine: min {min(cos):.4f}, mean {statistics.mean(cos):.4f}")
    print(f"paragraphs/s ({len(paragraphs)} drcd paragraphs): {base} {rates[base]:.2f}, int8 {rates['int8']:.2f}")

    for name in [n for n in args.sets.split(",") if n]:  # --sets '' skips the quality part
        corpus = jsonl(EXTERNAL / name / "corpus.jsonl")
        queries = jsonl(EXTERNAL / name / "queries.jsonl")
        ids = [p["id"] for p in corpus]
        texts = [p["text"] for p in corpus]
        firsts = {}
        for label, e in ((base, enc), ("int8", q8)):
            P = e.encode(texts, kind="passage")
            Q = e.encode([q["question"] for q in queries], kind="query")
            top = np.argsort(-(Q @ P.T), axis=1)[:, :5]
            firsts[label] = np.array([ids[t[0]] in q["gold"] for t, q in zip(top, queries, strict=True)])
            r5 = float(np.mean([any(ids[i] in q["gold"] for i in t) for t, q in zip(top, queries, strict=True)]))
            out["quality"].setdefault(name, {})[label] = {"r1": float(firsts[label].mean()), "r5": r5}
        only_f = int((firsts[base] & ~firsts["int8"]).sum())
        only_i = int((firsts["int8"] & ~firsts[base]).sum())
        out["quality"][name][f"only_{base}_first"] = only_f
        out["quality"][name]["only_int8_first"] = only_i
        qf, qi = out["quality"][name][base], out["quality"][name]["int8"]
        print(f"{name}: R@1 {base} {qf['r1']:.3f} int8 {qi['r1']:.3f}; R@5 {qf['r5']:.3f} / {qi['r5']:.3f}; "
              f"first only with {base} {only_f}, only with int8 {only_i}")

    search_sets = [n for n in args.search_sets.split(",") if n]
    if search_sets:
        out["search_ms"] = search_latency(settings, search_sets, args.searches)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


def search_latency(settings, sets: list[str], n: int) -> dict:
    """p50 / p95 ms of ``RagService.search`` per model and set, the first ``n`` questions after one
    warm-up question (each encoded afresh: the service keeps no question vectors across calls)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from tune_fusion import external_index

    from rag.config import DEFAULT_MODEL
    from rag.modelid import GEMMA_NAME
    from rag.service import RagService

    out: dict = {}
    print("| model | set | search p50 / p95 (ms) |\n|---|---|---:|")
    for model in (GEMMA_NAME, DEFAULT_MODEL):  # the default model even when RAG_EMBED_MODEL is set
        model_settings = settings.model_copy(update={"embed_model": model})
        for name in sets:
            svc = RagService.open(external_index(name, model_settings), model_settings)
            questions = [q["question"] for q in jsonl(EXTERNAL / name / "queries.jsonl")][: n + 1]
            svc.search(questions[0], k=10)
            times = []
            for q in questions[1:]:
                t = time.perf_counter()
                svc.search(q, k=10)
                times.append((time.perf_counter() - t) * 1000)
            out.setdefault(model, {})[name] = {"p50": pct(times, 50), "p95": pct(times, 95), "n": len(times)}
            print(f"| {model} | {name} | {pct(times, 50):.1f} / {pct(times, 95):.1f} |", flush=True)
    return out


if __name__ == "__main__":
    main()
