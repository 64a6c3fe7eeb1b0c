"""Precision and recall of the meaning check (``rag.evaluation.meaning``) on answers labelled by hand.

Two steps:

    # 1. collect: answers the product gave, from rag eval's results.json files (gold rows; the
    #    external sets' answers that missed) and from english_answers.py --json files (written
    #    English answers over Chinese paragraphs); every answer whose text does not hold a gold
    #    answer (the check's work), then a seeded sample of the others up to --n
    .venv/bin/python benchmarks/meaning_labels.py collect evals/meaning/labels.jsonl SOURCE... [--n 100]
    # (a person then sets "label" on every row: "right" when the answer states the gold answer,
    #  in any words or language, "wrong" otherwise; reading the answer, before the check is run)
    # the floor (MEANING_FLOOR) was chosen on made-up dev probes, not on the labels:
    OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/meaning_labels.py probe
    # 2. score: the check against the labels (loads the local model: RAG_LLM_MODEL_PATH or the
    #    default weights of `bash scripts/setup.sh --llm`)
    OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/meaning_labels.py score evals/meaning/labels.jsonl

It prints precision and recall (of "right") with Wilson 95% intervals for the substring match,
the numeric match, the model's verdict alone, and ``answer_by_meaning`` as ``rag eval`` reports it
(in text, or by value, or by the model), overall and on the answers the substring and numeric
matches did not count; and the model's P(yes) per row with ``--show``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _external_queries() -> dict[str, dict]:
    """Every external set's questions by id (their gold answers), for english_answers.py's rows."""
    from rag.evaluation.runner import external_root

    out: dict[str, dict] = {}
    root = external_root()
    if root is None:
        return out
    for path in sorted(root.glob("*/*/queries.jsonl")):
        for line in path.open(encoding="utf-8"):
            if line.strip():
                q = json.loads(line)
                out[q["id"]] = q
    return out


def _rows_of(source: Path, queries: dict[str, dict]) -> list[dict]:
    """Answered answerable questions of one source file, as label rows (no label yet)."""
    from rag.evaluation.answers import answer_by_value
    from rag.evaluation.metrics import answer_in_texts

    rows: list[dict] = []
    if source.suffix == ".jsonl":  # benchmarks/english_answers.py --json
        for line in source.open(encoding="utf-8"):
            r = json.loads(line)
            q = queries.get(r["id"])
            if q is None or not r.get("answer"):
                continue
            golds = [a for a in q.get("answers", []) if a] + [a for a in q.get("answers_en", []) if a]
            rows.append({"question": r["question"], "answers": golds, "answer": r["answer"], "lang": q.get("lang", "en"),
                         "source": f"{source.name}:{r.get('set')}:{r.get('mode')}", "qid": r["id"]})
    else:  # rag eval's results.json
        data = json.loads(source.read_text(encoding="utf-8"))
        mode = data.get('mode', 'off')
        for name, block in data.get("sets", {}).items():
            found = block.get("rows") or (block.get("answers") or {}).get("misses") or []
            for r in found:
                if not r.get("answerable") or r.get("abstained") or not r.get("answer") or not r.get("answers"):
                    continue
                rows.append({"question": r["question"], "answers": r["answers"], "answer": r["answer"],
                             "lang": r.get("lang", ""), "source": f"{name}:{mode}", "qid": r["id"]})
    for r in rows:
        in_text = answer_in_texts(r["answers"], [r["answer"]])
        r["in_text"] = bool(in_text)
        r["in_text_or_value"] = bool(in_text or answer_by_value(r["answers"], r["answer"]))
    return rows


def collect(out: Path, sources: list[Path], n: int, seed: int) -> None:
    if out.exists():
        raise SystemExit(f"{out} exists: labels are not overwritten (move it away first)")
    queries = _external_queries()
    seen: set[tuple[str, str]] = set()
    pool: list[dict] = []
    for source in sources:
        for r in _rows_of(source, queries):
            key = (r["question"], r["answer"])
            if key not in seen:
                seen.add(key)
                pool.append(r)
    rng = random.Random(seed)
    missed = [r for r in pool if not r["in_text_or_value"]]
    counted = [r for r in pool if r["in_text_or_value"]]
    rng.shuffle(missed)
    rng.shuffle(counted)
    chosen = missed[:n] + counted[: max(0, n - len(missed))]
    rng.shuffle(chosen)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for i, r in enumerate(chosen):
            fh.write(json.dumps({"id": f"m{i:03d}", **r, "label": None}, ensure_ascii=False) + "\n")
    print(f"{out}: {len(chosen)} answers ({min(len(missed), n)} the substring and numeric matches missed, "
          f"of {len(missed)}; the rest of {len(counted)} they counted) from {len(pool)}")


def _pr(rows: list[dict], predicted: str) -> str:
    tp = sum(1 for r in rows if r[predicted] and r["label"] == "right")
    fp = sum(1 for r in rows if r[predicted] and r["label"] != "right")
    fn = sum(1 for r in rows if not r[predicted] and r["label"] == "right")
    tn = len(rows) - tp - fp - fn
    from rag.evaluation.metrics import wilson_interval

    p_lo, p_hi = wilson_interval(tp, tp + fp)
    r_lo, r_hi = wilson_interval(tp, tp + fn)
    prec = f"{tp}/{tp + fp} = {tp / (tp + fp):.2f} [{p_lo:.2f}, {p_hi:.2f}]" if tp + fp else "—"
    rec = f"{tp}/{tp + fn} = {tp / (tp + fn):.2f} [{r_lo:.2f}, {r_hi:.2f}]" if tp + fn else "—"
    acc = (tp + tn) / len(rows) if rows else 0.0
    return f"| {prec} | {rec} | {acc:.2f} |"


def score(path: Path, floor: float | None, show: bool) -> None:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    unlabelled = [r["id"] for r in rows if r.get("label") not in ("right", "wrong")]
    if unlabelled:
        raise SystemExit(f"{path}: {len(unlabelled)} rows without a label (right/wrong): {', '.join(unlabelled[:10])}")
    from rag.evaluation.meaning import MEANING_FLOOR, MeaningCheck

    model = _model()
    check = MeaningCheck(model, floor=floor if floor is not None else MEANING_FLOOR)
    t0 = time.perf_counter()
    for r in rows:
        r["p_yes"] = check.p_yes(r["question"], r["answers"], r["answer"])
        r["model_says"] = r["p_yes"] >= check.floor
        r["by_meaning"] = r["in_text_or_value"] or r["model_says"]
    seconds = time.perf_counter() - t0
    missed = [r for r in rows if not r["in_text_or_value"]]
    right = sum(r["label"] == "right" for r in rows)
    print(f"{path}: {len(rows)} answers, {right} labelled right; {len(missed)} not counted by the substring "
          f"or numeric match ({sum(r['label'] == 'right' for r in missed)} of them right). Model: "
          f"{model.path.name}, floor {check.floor}; {seconds / len(rows):.2f} s an answer.\n")
    print("| answers | counted right by | precision [95%] | recall [95%] | agreement |")
    print("|---|---|---|---|---:|")
    for name, subset in (("all", rows), ("not counted by substring or value", missed)):
        for key, label in (("in_text", "substring"), ("in_text_or_value", "substring or value"),
                           ("model_says", "the model alone"), ("by_meaning", "substring, value or model (answer_by_meaning)")):
            if name != "all" and key in ("in_text", "in_text_or_value"):
                continue
            print(f"| {name} ({len(subset)}) | {label} {_pr(subset, key)}")
    if show:
        print()
        for r in sorted(rows, key=lambda r: r["p_yes"]):
            mark = "" if r["model_says"] == (r["label"] == "right") else "  <-- disagrees"
            print(f"{r['p_yes']:.3f} {r['label']:<5} {r['id']} {r['question'][:50]!r} gold {r['answers'][:2]} :: "
                  f"{r['answer'][:100]!r}{mark}")


# The floor's dev probes: made-up answers (none from the labelled file), right and wrong, to
# choose MEANING_FLOOR and compare prompt framings before the labels are scored. (question, gold
# answers, answer, right?)
DEV_PROBES: list[tuple[str, list[str], str, bool]] = [
    ("What is another term for the string of a problem instance?", ["位串", "bitstrings"],
     "Another term for it is a bit string [1].", True),
    ("What is another term for the string of a problem instance?", ["位串", "bitstrings"],
     "A problem instance is a string over an alphabet [1].", False),
    ("Who is the chairman of the Hong Kong Productivity Council?", ["陳祖恒"],
     "The chairman is Chan Cho-hang (Sunny Chan) [1].", True),
    ("Who is the chairman of the Hong Kong Productivity Council?", ["陳祖恒"],
     "The Council's executive director is Mohamed Butt [1].", False),
    ("清朝因什麼戰爭戰敗而失去李氏朝鮮這藩屬國？", ["甲午戰爭"], "依照條約李氏朝鮮不再是清朝的藩屬國。 [1]", False),
    ("清朝因什麼戰爭戰敗而失去李氏朝鮮這藩屬國？", ["甲午戰爭"], "清朝在中日甲午战争中战败，失去了朝鲜。[1]", True),
    ("克什米尔马鹿在外形上有什么特征？", ["身体呈褐色，有一些小斑点。牠们的臀部较浅色，内侧呈灰白色。"],
     "克什米尔马鹿的身体呈褐色，有一些小斑点。 [1]", True),
    ("When did the Fraunhofer institute open its Hong Kong centre?", ["2023年"],
     "On the Fraunhofer centre, the sources say: 「弗勞恩霍夫應用研究促進協會於2023年在港成立研發中心。」[1]", True),
    ("When did the Fraunhofer institute open its Hong Kong centre?", ["2023年"],
     "On the Fraunhofer centre, the sources say: 「該協會是歐洲最大的應用研究機構。」[1]", False),
    ("香港哪個機構負責推動新型工業化？", ["新型工業化及科技局"], "推動新型工業化的工作由创新科技及工业局负责。[1]", False),
    ("香港哪個機構負責推動新型工業化？", ["新型工業化及科技局"], "新型工業化是香港經濟發展的重要方向。[1]", False),
    ("What colour is the Kashmir stag's body?", ["褐色", "brown"], "Its body is brown with small spots [1].", True),
    ("What colour is the Kashmir stag's body?", ["褐色", "brown"],
     "The Kashmir stag lives in groups of 2 to 18 in dense riverine forests [1].", False),
    ("谁提出了相对论？", ["爱因斯坦"], "相对论由阿尔伯特·愛因斯坦提出。[1]", True),
    ("谁提出了相对论？", ["爱因斯坦"], "相对论是现代物理学的基础之一，包括狭义相对论和广义相对论。[1]", False),
]


def probe() -> None:
    """The dev probes' P(yes), their AUC and the share right at each candidate floor."""
    from rag.evaluation.meaning import MeaningCheck

    check = MeaningCheck(_model())
    out = [(check.p_yes(q, g, a), right) for q, g, a, right in DEV_PROBES]
    pos = [p for p, r in out if r]
    neg = [p for p, r in out if not r]
    auc = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))
    print(f"{len(out)} dev probes ({len(pos)} right): AUC {auc:.3f}")
    for floor in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85):
        tp = sum(p >= floor for p in pos)
        fp = sum(p >= floor for p in neg)
        print(f"floor {floor:.2f}: right counted {tp}/{len(pos)}, wrong counted {fp}/{len(neg)}")


def _model():  # type: ignore[no-untyped-def]
    from rag.config import get_settings
    from rag.llm.engine import get_local_model
    from rag.llm.weights import resolve_model_path

    settings = get_settings()
    return get_local_model(resolve_model_path(settings.llm_model_path, settings.cache_dir),
                           threads=settings.llm_threads or os.cpu_count() or 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("out", type=Path)
    c.add_argument("sources", type=Path, nargs="+")
    c.add_argument("--n", type=int, default=100)
    c.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("score")
    s.add_argument("path", type=Path)
    s.add_argument("--floor", type=float)
    s.add_argument("--show", action="store_true", help="every row with its P(yes), lowest first")
    sub.add_parser("probe", help="the dev probes: choose the floor and the prompt (no labels used)")
    args = parser.parse_args()
    if args.cmd == "collect":
        collect(args.out, args.sources, args.n, args.seed)
    elif args.cmd == "probe":
        probe()
    else:
        score(args.path, args.floor, args.show)


if __name__ == "__main__":
    main()
