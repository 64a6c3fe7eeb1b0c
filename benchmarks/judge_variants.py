"""Compare variants of the answerability judge on the external dev sets, paired, question by question.

The judge's weak script is 繁體 (dev AUC 0.83 against 0.95-0.96) and it misses near misses
(same-topic paragraphs without the answer). This script asks every variant about the same
(question, paragraph) pairs, so the differences are paired:

- ``product``: the product's prompt (``rag.llm.judge.USER``);
- ``question-last``: the instruction before the question (``USER_QUESTION_LAST``, ~12 tokens
  after the paragraph instead of ~24);
- ``simplified``: the product's prompt with the question in Simplified (OpenCC t2s; the same as
  ``product`` for a question without Traditional characters);
- ``mean-framings``: the mean of ``product`` and ``question-last`` (two framings averaged);
- ``mean-scripts``: the mean of ``product`` and ``simplified`` (the question in both scripts);
- ``per-script floor``: ``product`` with a floor chosen per script instead of one.

For each question the product's retrieval gives the top paragraphs (answerable: as retrieved;
near miss: the same ranking without the gold paragraphs), as ``judge_calibration.py`` does.
Every variant shares one KV cache of the paragraph (the prompt up to the paragraph's end), so
a variant after the first costs only its ~20-40 tokens. Reported per variant and script:

- AUC of the gold paragraph's P(yes) against the question's best near miss;
- at the floor that keeps dev false abstention at or below ``--max-false`` (chosen on the same
  questions): near-miss recall;
- the paired difference from ``product`` with a 95% bootstrap interval over questions (the
  floor chosen again in every resample, so the choice's optimism is in the interval).

    RAG_LLM=local OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/judge_variants.py \\
        --sets drcd/dev --per-set 20 --out reports/judge-variants.json
    ... --sets xquad/en-zh-dev,cmrc2018/dev,xquad/zh-dev --per-set 6 --out reports/judge-variants.json

Verdicts are stored in ``--out`` as they are made; a rerun reuses them (``--table-only``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_calibration import SETS, _save, dev_set, wilson  # noqa: E402

BASE = ("product", "question-last", "simplified")
DERIVED = {"mean-framings": ("product", "question-last"), "mean-scripts": ("product", "simplified")}
FLOORS = [round(0.01 * i, 2) for i in range(1, 100)]


def collect(args: argparse.Namespace, store: dict) -> None:
    from rag.answer.written.factory import judge_from_settings
    from rag.config import Settings
    from rag.llm.judge import USER_QUESTION_LAST, Judge
    from rag.text.normalise import convert_script

    settings = Settings(llm="local")
    product = judge_from_settings(settings, cache_mb=args.cache_mb)
    assert isinstance(product, Judge)
    model = product.model
    last = Judge(model, floor=product.floor, top_k=product.top_k, user=USER_QUESTION_LAST)

    def shared(title: str, text: str) -> list[int]:
        """The tokens both framings' prompts start with (up to about the paragraph's end)."""
        a, b = product.prompt("", title, text)[0], last.prompt("", title, text)[0]
        n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        return a[:n]

    def p_of(judge: Judge, question: str, title: str, text: str) -> float:
        """P(yes) with the KV cache of the shared prompt start kept once for all the variants:
        the tokens after it (the framing's words, the question) are the suffix."""
        base = shared(title, text)
        prefix, suffix = judge.prompt(question, title, text)
        return judge.probability(model.next_token_logits(base, prefix[len(base):] + suffix))

    variants: dict[str, Callable[[str, str, str], float]] = {
        "product": lambda q, t, x: p_of(product, q, t, x),
        "question-last": lambda q, t, x: p_of(last, q, t, x),
        "simplified": lambda q, t, x: p_of(product, convert_script(q, "t2s"), t, x),
    }
    questions = store.setdefault("questions", {})
    seconds = store.setdefault("seconds", [])
    for name in args.sets:
        svc, chosen = dev_set(name, settings, args.per_set, args.seed)
        for q in chosen:
            if q["id"] in questions:
                continue
            hits = svc.search(q["question"], k=10)
            gold = set(q["gold"])
            top = hits[: args.k]
            rest = [h for h in hits if h.para_id not in gold][: args.k]
            paras = {h.para_id: h for h in top + rest}
            p: dict[str, dict[str, float]] = {}
            t0 = time.perf_counter()
            for pid, hit in paras.items():
                p[pid] = {v: fn(q["question"], hit.title, hit.text) for v, fn in variants.items()}
            seconds.append(time.perf_counter() - t0)
            questions[q["id"]] = {
                "set": name, "lang": q.get("lang", "zh"), "question": q["question"], "p": p,
                "answerable": [[h.para_id, h.para_id in gold] for h in top],
                "near_miss": [h.para_id for h in rest],
            }
            _save(args.out, store)
            print(f"{name} {q['id']}: {len(questions)} questions, {len(paras)} paragraphs, "
                  f"{seconds[-1]:.1f} s", file=sys.stderr)


def score(q: dict, variant: str, pid: str) -> float:
    p = q["p"][pid]
    if variant in DERIVED:
        a, b = DERIVED[variant]
        return (p[a] + p[b]) / 2
    return p[variant]


def best(q: dict, variant: str, pids: Sequence[str]) -> float:
    return max((score(q, variant, pid) for pid in pids), default=0.0)


def auc(qs: Sequence[dict], variant: str) -> float:
    gold = [score(q, variant, pid) for q in qs for pid, is_gold in q["answerable"] if is_gold]
    near = [best(q, variant, q["near_miss"]) for q in qs if q["near_miss"]]
    wins = sum((g > n) + 0.5 * (g == n) for g in gold for n in near)
    return wins / max(len(gold) * len(near), 1)


def operating(qs: Sequence[dict], variant: str, max_false: float,
              floor_of: Callable[[dict], float] | None = None) -> tuple[float, int, int, int, int]:
    """(floor, false abstentions, answerable, near misses abstained on, near misses) at the floor
    that keeps false abstention <= max_false and abstains on the most near misses (a fixed floor
    per question when ``floor_of`` is given)."""
    ans = [best(q, variant, [pid for pid, _ in q["answerable"]]) for q in qs]
    near = [best(q, variant, q["near_miss"]) for q in qs]
    if floor_of is not None:
        fa = sum(a < floor_of(q) for a, q in zip(ans, qs, strict=True))
        rec = sum(n < floor_of(q) for n, q in zip(near, qs, strict=True))
        return (float("nan"), fa, len(qs), rec, len(qs))
    chosen = (FLOORS[0], 0, len(qs), -1, len(qs))
    for f in FLOORS:
        fa = sum(a < f for a in ans)
        rec = sum(n < f for n in near)
        if fa <= max_false * len(qs) and rec > chosen[3]:
            chosen = (f, fa, len(qs), rec, len(qs))
    return chosen


def per_script_floors(qs: Sequence[dict], max_false: float) -> dict[str, float]:
    return {lang: operating([q for q in qs if q["lang"] == lang], "product", max_false)[0]
            for lang in sorted({q["lang"] for q in qs})}


def recall_of(qs: Sequence[dict], variant: str, max_false: float) -> float:
    if variant == "per-script floor":
        floors = per_script_floors(qs, max_false)
        _, _, _, rec, n = operating(qs, "product", max_false, floor_of=lambda q, floors=floors: floors[q["lang"]])
    else:
        _, _, _, rec, n = operating(qs, variant, max_false)
    return rec / max(n, 1)


def bootstrap(qs: Sequence[dict], fn: Callable[[Sequence[dict]], float], rounds: int, seed: int) -> tuple[float, float]:
    rng = random.Random(seed)
    vals = sorted(fn([qs[rng.randrange(len(qs))] for _ in qs]) for _ in range(rounds))
    return vals[int(0.025 * rounds)], vals[int(0.975 * rounds) - 1]


def table(store: dict, max_false: float, rounds: int, seed: int) -> None:
    qs_all = [q for q in store["questions"].values() if q["near_miss"] and any(g for _, g in q["answerable"])]
    secs = sorted(store.get("seconds", [0.0]))
    print(f"{len(qs_all)} dev questions with the gold paragraph retrieved in the top k; "
          f"per question (all variants) median {secs[len(secs) // 2]:.1f} s")
    langs = sorted({q["lang"] for q in qs_all})
    groups = [("all", qs_all)] + ([(lang, [q for q in qs_all if q["lang"] == lang]) for lang in langs]
                                  if len(langs) > 1 else [])
    names = list(BASE) + list(DERIVED) + ["per-script floor"]
    for label, qs in groups:
        if len(qs) < 3:
            continue
        print(f"\n{label} ({len(qs)} questions), floor chosen for dev false abstention <= {max_false}:")
        print("| variant | AUC | Δ AUC vs product [95%] | floor | false abstention | near-miss recall "
              "| Δ recall vs product [95%] |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for v in names:
            if v == "per-script floor":
                floors = per_script_floors(qs, max_false)
                _, fa, na, rec, nr = operating(qs, "product", max_false, floor_of=lambda q, floors=floors: floors[q["lang"]])
                a, da, floor_txt = auc(qs, "product"), "", ", ".join(f"{k} {f:.2f}" for k, f in floors.items())
            else:
                floor, fa, na, rec, nr = operating(qs, v, max_false)
                a, floor_txt = auc(qs, v), f"{floor:.2f}"
                da = "" if v == "product" else (
                    f"{a - auc(qs, 'product'):+.3f} [{{:+.3f}}, {{:+.3f}}]".format(
                        *bootstrap(qs, lambda s, v=v: auc(s, v) - auc(s, "product"), rounds, seed)))
            lo, hi = wilson(rec, nr)
            dr = "" if v == "product" else "{:+.3f} [{:+.3f}, {:+.3f}]".format(
                recall_of(qs, v, max_false) - recall_of(qs, "product", max_false),
                *bootstrap(qs, lambda s, v=v: recall_of(s, v, max_false) - recall_of(s, "product", max_false),
                           rounds, seed))
            print(f"| {v} | {a:.3f} | {da} | {floor_txt} | {fa}/{na} | {rec}/{nr} = {rec / max(nr, 1):.3f} "
                  f"[{lo:.2f}, {hi:.2f}] | {dr} |")
    fixed = store.get("product_floor")
    if fixed is not None:  # what adopting a variant as it is would do, at the floor the product has
        print(f"\nat the product's floor {fixed:.2f}, as each variant would run without a new calibration:")
        print("| questions | variant | false abstention | near-miss recall | Δ recall vs product [95%] |")
        print("|---|---|---:|---:|---:|")
        for label, qs in groups:
            def at_fixed(s: Sequence[dict], v: str) -> float:
                return operating(s, v, max_false, floor_of=lambda q: fixed)[3] / max(len(s), 1)
            for v in list(BASE) + list(DERIVED):
                _, fa, na, rec, nr = operating(qs, v, max_false, floor_of=lambda q: fixed)
                dr = "" if v == "product" else "{:+.3f} [{:+.3f}, {:+.3f}]".format(
                    at_fixed(qs, v) - at_fixed(qs, "product"),
                    *bootstrap(qs, lambda s, v=v: at_fixed(s, v) - at_fixed(s, "product"), rounds, seed))
                print(f"| {label} | {v} | {fa}/{na} | {rec}/{nr} | {dr} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="drcd/dev", help=f"comma-separated, of {', '.join(SETS)}")
    ap.add_argument("--per-set", type=int, default=20)
    ap.add_argument("--k", type=int, default=3, help="paragraphs judged per question")
    ap.add_argument("--seed", type=int, default=11, help="question sample (the calibration's was 7)")
    ap.add_argument("--max-false", type=float, default=0.03)
    ap.add_argument("--rounds", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--cache-mb", type=int, default=4096, help="the model's KV cache in memory")
    ap.add_argument("--out", type=Path, default=Path("reports/judge-variants.json"))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    args.sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in args.sets if s not in SETS]
    if unknown:
        ap.error(f"unknown set(s) {', '.join(unknown)}: use {', '.join(SETS)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    store = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    if not args.table_only:
        from rag.llm.judge import DEFAULT_FLOOR

        store["product_floor"] = DEFAULT_FLOOR
        collect(args, store)
    if not store.get("questions"):
        sys.exit(f"{args.out}: no verdicts yet")
    table(store, args.max_false, args.rounds, args.seed)


if __name__ == "__main__":
    main()
