"""Calibrate the answerability judge's floor on the external dev sets (never the gold set).

For a fixed-seed sample of each dev set's questions, the product's retrieval gives the top
paragraphs. Each question is then seen twice, as the product would see it:

- **answerable**: its top-k paragraphs as retrieved (the gold paragraph usually among them);
- **unanswerable (near miss)**: the same ranking with the gold paragraph(s) taken out, i.e. what
  the product retrieves when the documents lack the answer: same-topic paragraphs without it;
- **off-topic**: the question against another question's top-k (from another set).

A question abstains when no judged paragraph reaches the floor. The table gives, per floor,
false abstention (answerable questions abstained on) and abstention recall (near misses and
off-topic abstained on), overall and per language, with 95% Wilson intervals; the chosen floor
keeps dev false abstention at or below ``--max-false`` and maximises near-miss recall.

    RAG_LLM=local OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/judge_calibration.py \
        --per-set 12 --out reports/judge-calibration.json

``--framing question-last`` asks with the instruction before the question
(``rag.llm.judge.USER_QUESTION_LAST``): about 12 tokens follow the cached paragraph instead of
24, so a paragraph read before costs about half. Give it its own ``--out``; the table then shows
whether it separates answers from near misses as well (AUC, false abstention and recall per
floor).

Verdicts are stored in ``--out`` as they are made; a rerun reuses them (``--table-only`` prints
the table from the stored verdicts alone).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

SETS = ("drcd/dev", "cmrc2018/dev", "xquad/zh-dev", "xquad/en-zh-dev")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def dev_set(name: str, settings, per_set: int, seed: int) -> tuple:
    """(the service over dev set ``name``'s corpus, indexed as a new corpus (the eval's cached
    index), its fixed-seed sample of ``per_set`` queries)."""
    from rag.evaluation.runner import (
        _open_or_build,
        _read_jsonl,
        default_target,
        external_root,
        sample_queries,
    )
    from rag.files import sha256_file

    root = external_root()
    if root is None:
        sys.exit("no external dev sets found (../shared/data/external)")
    folder = root / name
    corpus = folder / "corpus.jsonl"
    index_dir = Path(settings.cache_dir) / "eval-index" / f"{name.replace('/', '-')}-{sha256_file(corpus)[:16]}"
    svc = _open_or_build(default_target(), index_dir, [corpus], settings)
    return svc, sample_queries(_read_jsonl(folder / "queries.jsonl"), per_set, seed=seed)


def collect(args: argparse.Namespace, store: dict) -> None:
    from rag.answer.written.factory import judge_from_settings
    from rag.config import Settings

    settings = Settings(llm="local")
    judge = judge_from_settings(settings, cache_mb=4096)
    if args.framing == "question-last":  # the instruction before the question: fewer tokens after the paragraph
        from rag.llm.judge import USER_QUESTION_LAST, Judge

        judge = Judge(judge.model, floor=judge.floor, top_k=judge.top_k, user=USER_QUESTION_LAST)  # type: ignore[attr-defined]
    store["framing"] = args.framing
    verdicts = store.setdefault("verdicts", {})  # "qid|para_id" -> p_yes
    questions = store.setdefault("questions", {})
    k = args.k

    def p_of(q: dict, hit) -> float:
        key = f"{q['id']}|{hit.para_id}"
        if key not in verdicts:
            t0 = time.perf_counter()
            verdicts[key] = judge.p_yes(q["question"], hit.title, hit.text)
            store.setdefault("seconds", []).append(time.perf_counter() - t0)
        return verdicts[key]

    pools: dict[str, list] = {}
    for name in SETS:
        svc, chosen = dev_set(name, settings, args.per_set, args.seed)
        pools[name] = []
        for q in chosen:
            hits = svc.search(q["question"], k=10)
            gold = set(q["gold"])
            top = hits[:k]
            rest = [h for h in hits if h.para_id not in gold][:k]
            questions[q["id"]] = {
                "set": name, "lang": q.get("lang", "zh"), "question": q["question"],
                "answerable": [[h.para_id, p_of(q, h), h.para_id in gold] for h in top],
                "near_miss": [[h.para_id, p_of(q, h)] for h in rest],
            }
            pools[name].append((q, top))
            _save(args.out, store)
            n = len(store.get("seconds", []))
            print(f"{name} {q['id']}: {len(questions)} questions, {n} verdicts, "
                  f"median {sorted(store['seconds'])[n // 2] if n else 0:.2f} s", file=sys.stderr)
    # off-topic: each question against the top-k of a question from another set (paragraphs
    # already judged once, so their prefixes are cached: only the question is new)
    rng = random.Random(args.seed)
    names = list(pools)
    for i, name in enumerate(names):
        other = names[(i + 1) % len(names)]
        for q, _ in pools[name][: args.off_topic]:
            _, top = rng.choice(pools[other])
            questions[q["id"]]["off_topic"] = [[h.para_id, p_of(q, h)] for h in top]
        _save(args.out, store)


def _save(path: Path, store: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(store, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def table(store: dict, max_false: float) -> float:
    qs = list(store["questions"].values())
    floors = [round(0.05 * i, 2) for i in range(1, 20)]

    def best(rows: list) -> float:
        return max((r[1] for r in rows), default=0.0)

    def rates(floor: float, subset: list) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        ans = [q for q in subset if q["answerable"]]
        fa = sum(best(q["answerable"]) < floor for q in ans)
        nm = [q for q in subset if q["near_miss"]]
        rec = sum(best(q["near_miss"]) < floor for q in nm)
        ot = [q for q in subset if q.get("off_topic")]
        orec = sum(best(q["off_topic"]) < floor for q in ot)
        return (fa, len(ans)), (rec, len(nm)), (orec, len(ot))

    print(f"{len(qs)} dev questions, framing {store.get('framing', 'product')}; verdict latency median "
          f"{sorted(store['seconds'])[len(store['seconds']) // 2]:.2f} s (new paragraph or cached)")
    gold = [r[1] for q in qs for r in q["answerable"] if r[2]]
    near = [best(q["near_miss"]) for q in qs if q["near_miss"]]
    wins = sum((g > n) + 0.5 * (g == n) for g in gold for n in near)
    print(f"AUC, gold paragraphs' P(yes) against each question's best near miss: "
          f"{wins / max(len(gold) * len(near), 1):.3f} ({len(gold)} gold, {len(near)} near misses)")
    print("| floor | false abstention (answerable) | near-miss recall | off-topic recall |")
    print("|---:|---:|---:|---:|")
    chosen, chosen_recall = floors[0], -1.0
    for f in floors:
        (fa, na), (r, nr), (o, no) = rates(f, qs)
        lo, hi = wilson(fa, na)
        print(f"| {f:.2f} | {fa}/{na} = {fa / max(na, 1):.3f} [{lo:.3f}, {hi:.3f}] | "
              f"{r}/{nr} = {r / max(nr, 1):.3f} | {o}/{no} = {o / max(no, 1):.3f} |")
        if fa / max(na, 1) <= max_false and r / max(nr, 1) > chosen_recall:
            chosen, chosen_recall = f, r / max(nr, 1)
    print(f"\nchosen floor {chosen:.2f} (dev false abstention <= {max_false}, most near-miss recall)")
    print("\nper language at the chosen floor:")
    print("| language | false abstention | near-miss recall | off-topic recall |")
    print("|---|---:|---:|---:|")
    for lang in sorted({q["lang"] for q in qs}):
        (fa, na), (r, nr), (o, no) = rates(chosen, [q for q in qs if q["lang"] == lang])
        print(f"| {lang} | {fa}/{na} | {r}/{nr} | {o}/{no} |")
    # ranking: does P(yes) put the gold paragraph first more often than retrieval did?
    moved = {"retrieval": 0, "judge": 0, "n": 0}
    for q in qs:
        rows = q["answerable"]
        if not any(r[2] for r in rows):
            continue
        moved["n"] += 1
        moved["retrieval"] += bool(rows[0][2])
        moved["judge"] += bool(max(rows, key=lambda r: r[1])[2])
    print(f"\nrerank by P(yes) within the top k: gold first {moved['retrieval']}/{moved['n']} by retrieval, "
          f"{moved['judge']}/{moved['n']} by the judge")
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-set", type=int, default=12)
    ap.add_argument("--off-topic", type=int, default=6, help="off-topic probes per set")
    ap.add_argument("--k", type=int, default=3, help="paragraphs judged per question")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-false", type=float, default=0.03)
    ap.add_argument("--out", type=Path, default=Path("reports/judge-calibration.json"))
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--framing", choices=["product", "question-last"], default="product",
                    help="the judge's prompt: the product's, or the instruction before the question "
                         "(rag.llm.judge.USER_QUESTION_LAST); use another --out for each")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    store = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    if not args.table_only:
        collect(args, store)
    table(store, args.max_false)


if __name__ == "__main__":
    main()
