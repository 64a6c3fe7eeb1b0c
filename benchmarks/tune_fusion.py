"""Choose the fusion method and lexical weights on the external dev sets; print a table.

    python benchmarks/tune_fusion.py [--sets drcd/dev,cmrc2018/dev,xquad/zh-dev,xquad/en-zh-dev]
                                     [--json reports/tune_fusion.json]

Each set's corpus is indexed on its own (cached by content hash). For every query the dense
and BM25 candidate scores are computed once, then each fusion rule is replayed over them.
Dev sets only: the weights chosen here are the product defaults (see docs/retrieval.md, "Fusion").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from query_cache import install  # noqa: E402

from rag.config import get_settings  # noqa: E402
from rag.service import RagService  # noqa: E402

EXTERNAL = ROOT.parent / "shared" / "data" / "external"
DEFAULT_SETS = "drcd/dev,cmrc2018/dev,xquad/zh-dev,xquad/en-zh-dev"


# Candidate fusion rules compared here (the product runs rag/retrieval/fusion.py's convex rule, max-normalised).
def rrf(rankings: list[list[str]], k: int = 60) -> dict[str, float]:
    """Reciprocal-rank fusion: sum over rankings of 1 / (k + rank), rank counted from 1."""
    out: dict[str, float] = {}
    for ranking in rankings:
        for r, key in enumerate(ranking, start=1):
            out[key] = out.get(key, 0.0) + 1.0 / (k + r)
    return out


def convex_fuse(dense: dict[str, float], lexical: dict[str, float], w: float, *, lexical_norm: str = "max") -> dict[str, float]:
    """``(1 - w) * dense + w * lexical`` normalised by its maximum or min-max scaled."""
    if lexical_norm == "max":
        top = max(lexical.values(), default=0.0)
        lex = {c: (max(0.0, s) / top if top > 0 else 0.0) for c, s in lexical.items()}
    else:
        lo, hi = min(lexical.values(), default=0.0), max(lexical.values(), default=0.0)
        lex = {c: ((s - lo) / (hi - lo) if hi - lo > 1e-12 else float(hi > 0)) for c, s in lexical.items()}
    return {c: (1.0 - w) * dense.get(c, 0.0) + w * lex.get(c, 0.0) for c in set(dense) | set(lex)}


def rank(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))

def external_index(name: str, settings) -> Path:
    """Index a set's corpus.jsonl once into the cache (incremental, embeddings cached)."""
    from rag.evaluation.runner import external_index_dir
    from rag.files import sha256_file
    from rag.index.build import build_index

    corpus = EXTERNAL / name / "corpus.jsonl"
    index_dir = external_index_dir(settings, name, sha256_file(corpus)[:16])
    summary = build_index([corpus], index_dir, settings, progress=True)  # incremental: cheap when unchanged
    print("\n".join(summary.lines()), flush=True)
    return index_dir


def gold_index(settings) -> Path:
    """The default corpus indexed with ``settings`` as `rag eval` indexes it (built when missing)."""
    from rag.evaluation.runner import gold_index_dir
    from rag.index.build import build_index

    corpus = ROOT / "corpus"
    index_dir = gold_index_dir(settings, corpus)
    build_index([corpus], index_dir, settings, progress=True)
    return index_dir


def load_queries(folder: Path) -> list[dict]:
    with open(folder / "queries.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def recall_at(ranked: list[str], gold: set[str], k: int) -> float:
    return 1.0 if gold & set(ranked[:k]) else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default=DEFAULT_SETS)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--weights", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,1.0")
    ap.add_argument("--translate", action="store_true", help="dictionary-translate English questions (RAG_TRANSLATE_QUERIES)")
    args = ap.parse_args()
    install()  # dev questions' vectors cached across runs (benchmarks/query_cache.py)
    settings = get_settings()
    weights = [float(w) for w in args.weights.split(",")]
    settings = settings.model_copy(update={"translate_queries": args.translate})
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for name in args.sets.split(","):
        folder = EXTERNAL / name
        if not folder.exists():
            print(f"skip {name}: {folder} not found")
            continue
        t0 = time.perf_counter()
        svc = RagService.open(external_index(name, settings), settings)
        queries = load_queries(folder)
        vecs = svc.retriever.encode_queries([svc.question(q["question"]) for q in queries])
        rows: dict[str, list[tuple[float, float]]] = {}
        for q, v in zip(queries, vecs, strict=True):
            dense, lexical, _ = svc.retriever.component_scores(svc.question(q["question"]), v)
            gold = set(q["gold"])
            rules = {f"convex-max w={w}": convex_fuse(dense, lexical, w) for w in weights}
            rules.update({f"convex-minmax w={w}": convex_fuse(dense, lexical, w, lexical_norm="minmax") for w in (0.2, 0.3, 0.4, 0.5)})
            d_rank = [c for c, _ in rank(dense)]
            l_rank = [c for c, _ in rank({c: s for c, s in lexical.items() if s > 0})]
            rules["rrf k=60"] = rrf([d_rank, l_rank])
            for rule, scores in rules.items():
                ranked = [p for p, _ in rank(scores)]
                rows.setdefault(rule, []).append((recall_at(ranked, gold, 1), recall_at(ranked, gold, 5)))
        table[name] = {rule: tuple(float(x) for x in np.mean(v, axis=0)) for rule, v in rows.items()}
        print(f"{name}: {len(queries)} queries, {time.perf_counter() - t0:.0f}s", flush=True)
    rules = list(next(iter(table.values())).keys()) if table else []
    print("\n| rule | " + " | ".join(f"{n} R@1 / R@5" for n in table) + " |")
    print("|---|" + "---|" * len(table))
    for rule in rules:
        cells = " | ".join(f"{table[n][rule][0]:.3f} / {table[n][rule][1]:.3f}" for n in table)
        print(f"| {rule} | {cells} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
