"""Calibrate the claim check (``Judge.p_claim``) on dev questions: English claims over Chinese
paragraphs (xquad/en-zh-dev), never the gold set.

For each question of a paragraph that has at least two: the right answer as the claim
(positive), the answer to another question of the same paragraph (negative "beside the
question": true in the passage, not an answer), and an answer from another article (negative
"made up"). Prints AUC against each kind of negative and, at floors from 0.1 to 0.9, the share
of right answers kept and of wrong ones caught.

    OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/claim_calibration.py [N paragraphs]
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "xquad" / "en-zh-dev"


def auc(pos: list[float], neg: list[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / max(len(pos) * len(neg), 1)


def main() -> None:
    from rag.config import Settings
    from rag.llm.engine import get_local_model
    from rag.llm.judge import Judge
    from rag.llm.weights import resolve_model_path

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    paras = {p["id"]: p for p in map(json.loads, (FOLDER / "corpus.jsonl").open(encoding="utf-8"))}
    by_para: dict[str, list[dict]] = defaultdict(list)
    for q in map(json.loads, (FOLDER / "queries.jsonl").open(encoding="utf-8")):
        if q.get("answers_en"):
            by_para[q["gold"][0]].append(q)
    rng = random.Random(11)
    chosen = [pid for pid in sorted(by_para) if len(by_para[pid]) >= 2]
    rng.shuffle(chosen)
    chosen = chosen[:n]
    s = Settings(llm="local")
    judge = Judge(get_local_model(resolve_model_path(s.llm_model_path, s.cache_dir), threads=2, cache_mb=256))
    scores: dict[str, list[float]] = {"right": [], "beside": [], "made_up": []}
    t0 = time.perf_counter()
    for pid in chosen:
        qs = by_para[pid]
        para = paras[pid]
        others = [q for p2 in chosen if p2.split(":")[1] != pid.split(":")[1] for q in by_para[p2]]
        for q in qs[:3]:
            right = q["answers_en"][0]
            beside = next((o["answers_en"][0] for o in qs if o is not q and o["answers_en"][0] != right), None)
            made_up = rng.choice(others)["answers_en"][0]
            for kind, claim in (("right", right), ("beside", beside), ("made_up", made_up)):
                if claim:
                    scores[kind].append(judge.p_claim(q["question"], f"{claim}.", para.get("title", ""), para["text"]))
    seconds = time.perf_counter() - t0
    total = sum(len(v) for v in scores.values())
    print(f"{len(chosen)} paragraphs, {total} claims, {seconds / max(total, 1):.2f} s a claim\n")
    print(f"AUC right vs beside the question: {auc(scores['right'], scores['beside']):.3f}")
    print(f"AUC right vs made up:             {auc(scores['right'], scores['made_up']):.3f}\n")
    print("| floor | right kept | beside caught | made up caught |")
    print("|---:|---:|---:|---:|")
    for floor in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        def share(xs: list[float], keep: bool, floor: float = floor) -> float:
            return sum((x >= floor) == keep for x in xs) / max(len(xs), 1)

        print(f"| {floor:.1f} | {share(scores['right'], True):.2f} | {share(scores['beside'], False):.2f} | "
              f"{share(scores['made_up'], False):.2f} |")


if __name__ == "__main__":
    main()
