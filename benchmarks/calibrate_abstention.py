"""Fit the abstention model (rag/retrieval/relevance.py) on the external dev sets; check it on the gold set.

    python benchmarks/calibrate_abstention.py [--per-set 600] [--json reports/calibration.json]

Positives: each dev question's gold paragraph. Negatives: the best-ranked paragraph that is not
gold for the same question (a same-topic near miss, like a plausible unanswerable question).
The fitted coefficients are printed for rag/retrieval/relevance.py; the gold set (evals/gold.jsonl, never
used for fitting) then shows abstention recall and false abstention at several floors.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from query_cache import install  # noqa: E402
from tune_fusion import EXTERNAL, external_index, gold_index, load_queries  # noqa: E402

from rag.config import get_settings  # noqa: E402
from rag.profiles import profile_for  # noqa: E402
from rag.question import Question  # noqa: E402
from rag.retrieval.relevance import features, probability  # noqa: E402
from rag.service import RagService  # noqa: E402

SETS = ("drcd/dev", "cmrc2018/dev", "xquad/en-zh-dev")
NAMES = ["dense", "coverage", "latin", "dense_latin", "coverage_latin", "missing_words"]


def collect(svc: RagService, queries: list[dict]) -> tuple[list[dict], list[int]]:
    X, y = [], []
    results = svc.search_many([q["question"] for q in queries], k=10)
    for q, hits in zip(queries, results, strict=True):
        gold = set(q["gold"])
        pos = next((h for h in hits if h.para_id in gold), None)
        neg = next((h for h in hits if h.para_id not in gold), None)
        if pos is not None:
            X.append(features(Question.make(q["question"]), pos.text, pos.dense_score or 0.0))
            y.append(1)
        if neg is not None:
            X.append(features(Question.make(q["question"]), neg.text, neg.dense_score or 0.0))
            y.append(0)
    return X, y


def fit(X: list[dict], y: list[int]) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    A = np.array([[x[n] for n in NAMES] for x in X])
    model = LogisticRegression(C=10.0, max_iter=2000).fit(A, np.array(y))
    coef = {"bias": float(model.intercept_[0])}
    coef.update({n: float(c) for n, c in zip(NAMES, model.coef_[0], strict=True)})
    return coef


def gold_check(coef: dict[str, float], settings) -> list[dict]:
    gold = [json.loads(line) for line in open(ROOT / "evals" / "gold.jsonl", encoding="utf-8")]
    svc = RagService.open(gold_index(settings), settings)
    rows = []
    for item in gold:
        hits = svc.search(item["question"], k=5, history=item.get("history"))
        top = max((probability(features(Question.make(item["question"]), h.text, h.dense_score or 0.0), coef) for h in hits), default=0.0)
        rows.append({"id": item["id"], "lang": item["lang"], "answerable": bool(item["gold"]), "p": top})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-set", type=int, default=600)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--sets", default=",".join(SETS), help="dev sets for positives and near misses")
    ap.add_argument("--offtopic", default="xquad/en-zh-dev:drcd/dev,cmrc2018/dev:xquad/zh-dev,drcd/dev:cmrc2018/dev",
                    help="QUESTIONS:CORPUS pairs for off-topic negatives")
    ap.add_argument("--floor", type=float, default=None, help="the floor to report the dev sets' outcome at")
    args = ap.parse_args()
    install()  # dev questions' vectors cached across runs (benchmarks/query_cache.py)
    settings = get_settings()
    rng = random.Random(7)
    X, y = [], []
    for name in args.sets.split(","):
        if not (EXTERNAL / name).exists():
            print(f"skip {name}: not found")
            continue
        svc = RagService.open(external_index(name, settings), settings)
        queries = load_queries(EXTERNAL / name)
        queries = rng.sample(queries, min(args.per_set, len(queries)))
        xs, ys = collect(svc, queries)
        X += xs
        y += ys
        print(f"{name}: {sum(ys)} positives, {len(ys) - sum(ys)} negatives", flush=True)
    # Off-topic negatives: questions of one set asked against another set's corpus (their
    # best hit is about something else entirely), in both languages.
    for qset, cset in (pair.split(":") for pair in args.offtopic.split(",") if pair):
        if not (EXTERNAL / qset).exists() or not (EXTERNAL / cset).exists():
            continue
        svc = RagService.open(external_index(cset, settings), settings)
        queries = rng.sample(load_queries(EXTERNAL / qset), min(args.per_set // 2, 300))
        n = 0
        for q, hits in zip(queries, svc.search_many([q["question"] for q in queries], k=1), strict=True):
            if hits:
                X.append(features(Question.make(q["question"]), hits[0].text, hits[0].dense_score or 0.0))
                y.append(0)
                n += 1
        print(f"{qset} questions on the {cset} corpus: {n} off-topic negatives", flush=True)
    coef = fit(X, y)
    print("\nfitted COEF =", json.dumps({k: round(v, 3) for k, v in coef.items()}))
    print("current coefficients of", settings.embed_model, "=", json.dumps(dict(profile_for(settings.embed_model).coef or {})))
    probs = np.array([probability(x, coef) for x in X])
    yy = np.array(y)
    print("\n| floor | dev: positives kept | dev: near misses rejected | gold: answerable kept | gold: unanswerable abstained |")
    print("|---|---|---|---|---|")
    rows = gold_check(coef, settings)
    ans = np.array([r["p"] for r in rows if r["answerable"]])
    una = np.array([r["p"] for r in rows if not r["answerable"]])
    table = []
    # The floor that keeps 95% of the dev positives (false abstention <= 0.05 on text the
    # model was not tuned for), next to the fixed grid.
    keep95 = float(np.quantile(probs[yy == 1], 0.05))
    print(f"floor keeping 95% of dev positives: {keep95:.3f}")
    extra = [round(keep95, 3)] + ([args.floor] if args.floor is not None else [])
    for floor in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, *extra):
        kept = float((probs[yy == 1] >= floor).mean())
        rejected = float((probs[yy == 0] < floor).mean())
        g_kept = float((ans >= floor).mean()) if len(ans) else float("nan")
        g_abst = float((una < floor).mean()) if len(una) else float("nan")
        table.append({"floor": floor, "dev_kept": kept, "dev_rejected": rejected, "gold_kept": g_kept, "gold_abstained": g_abst})
        print(f"| {floor} | {kept:.3f} | {rejected:.3f} | {g_kept:.3f} | {g_abst:.3f} |")
    print("\nunanswerable gold questions and their p:")
    for r in rows:
        if not r["answerable"]:
            print(f"  {r['id']}: {r['p']:.3f}")
    print("answerable gold questions with p < 0.5:")
    for r in rows:
        if r["answerable"] and r["p"] < 0.5:
            print(f"  {r['id']}: {r['p']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"coef": coef, "table": table, "gold": rows}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
