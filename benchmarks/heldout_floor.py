"""The relevance floor on text it was not tuned for: the dev sets indexed as new corpora.

For each external dev set, a fixed-seed sample of its questions (the one ``rag eval --answers``
asks) is searched three ways, each in the set's own index, built as ``rag index`` builds it:

- **answerable**: against the whole corpus; the floor refuses it when the best hit's relevance
  is under the floor (false abstention);
- **near miss**: against the corpus without the sample's gold paragraphs (the near-miss indexes
  of ``rag eval --answers``, reused); refusing is right;
- **off-topic**: the questions of another set (a Traditional, a Simplified and an English
  one) asked of this set's corpus; refusing is right.

It prints, per set and language, the share refused at each floor, and for each floor the worst
false abstention over the sets and languages. The floor that the product should use without the
judge is the highest one whose false abstention stays <= 0.05 everywhere; with the judge, the
floor only screens off-topic questions, and should refuse no answerable question the judge
would pass.

    OMP_WAIT_POLICY=passive python benchmarks/heldout_floor.py [--sample 200] [--json out.json]
        [--floors 0.05,0.1,...]

Question vectors come from ``benchmarks/query_cache.py`` when cached there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from query_cache import install  # noqa: E402
from tune_fusion import EXTERNAL, load_queries  # noqa: E402

from rag.answer.abstain import relevance_of  # noqa: E402
from rag.config import get_settings  # noqa: E402
from rag.evaluation.answers import near_miss_folds, near_miss_index  # noqa: E402
from rag.evaluation.runner import _open_or_build, default_target, external_index_dir, sample_queries  # noqa: E402
from rag.files import sha256_file  # noqa: E402

SETS = ("drcd/dev", "cmrc2018/dev", "xquad/zh-dev", "xquad/en-zh-dev")
# off-topic questions for each set: those of sets over other articles
OFF_TOPIC = {"drcd/dev": ("cmrc2018/dev", "xquad/en-zh-dev"), "cmrc2018/dev": ("drcd/dev", "xquad/en-zh-dev"),
             "xquad/zh-dev": ("drcd/dev", "cmrc2018/dev"), "xquad/en-zh-dev": ("drcd/dev", "cmrc2018/dev")}
FLOORS = (0.0, 0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


def best_relevance(svc, questions: list[str]) -> list[float]:
    """The best hit's relevance for each question (0 when nothing is retrieved)."""
    results = svc.search_many(questions, k=5)
    return [max((relevance_of(h) for h in hits), default=0.0) for hits in results]


def lang_of(q: dict) -> str:
    return q.get("lang") or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=200, help="questions per set (fixed seed; default 200)")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--floors", default=",".join(str(f) for f in FLOORS))
    parser.add_argument("--json", type=Path, help="write the per-question relevances here")
    args = parser.parse_args()
    settings = get_settings().model_copy(update={"llm": "off", "min_score": None})
    install()
    target = default_target()
    floors = [float(f) for f in args.floors.split(",")]
    sets = [s for s in args.sets.split(",") if s]
    samples = {name: sample_queries(load_queries(EXTERNAL / name), args.sample) for name in SETS}
    out: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for name in sets:
        corpus = EXTERNAL / name / "corpus.jsonl"
        digest = sha256_file(corpus)[:16]
        svc = _open_or_build(target, external_index_dir(settings, name, digest), [corpus], settings)
        chosen = samples[name]
        rows: dict[str, list[tuple[str, float]]] = {}
        rows["answerable"] = list(zip(map(lang_of, chosen), best_relevance(svc, [q["question"] for q in chosen]),
                                      strict=True))
        off = [q for other in OFF_TOPIC[name] for q in samples[other][: args.sample // 2]]
        rows["off-topic"] = list(zip(map(lang_of, off), best_relevance(svc, [q["question"] for q in off]), strict=True))
        with corpus.open(encoding="utf-8") as fh:
            n_paragraphs = sum(1 for line in fh if line.strip())
        near: list[tuple[str, float]] = []
        for fold in near_miss_folds(chosen, n_paragraphs):
            dropped = {g for q in fold for g in q["gold"]}
            nm_svc, _ = near_miss_index(Path(settings.cache_dir), name, corpus, digest, dropped,
                                        lambda d, sources: _open_or_build(target, d, sources, settings))
            near += list(zip(map(lang_of, fold), best_relevance(nm_svc, [q["question"] for q in fold]), strict=True))
        rows["near miss"] = near
        out[name] = rows
        print(f"{name}: {len(chosen)} answerable, {len(near)} near misses, {len(off)} off-topic", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    report(out, floors)


def report(out: dict[str, dict[str, list[tuple[str, float]]]], floors: list[float]) -> None:
    head = " ".join(f"{f:>5.2f}" for f in floors)
    print(f"\nshare refused by the floor (answerable: false abstention; the others: right)\n"
          f"{'set':16} {'kind':10} {'lang':5} {'n':>4} {head}")
    worst = {f: 0.0 for f in floors}
    for name, rows in out.items():
        for kind, pairs in rows.items():
            for lang in sorted({lg for lg, _ in pairs}):
                rel = [r for lg, r in pairs if lg == lang]
                shares = [sum(r < f for r in rel) / len(rel) for f in floors]
                if kind == "answerable":
                    for f, s in zip(floors, shares, strict=True):
                        worst[f] = max(worst[f], s)
                print(f"{name:16} {kind:10} {lang:5} {len(rel):4} " + " ".join(f"{s:5.2f}" for s in shares))
    print(f"{'worst false abstention':38} " + " ".join(f"{worst[f]:5.2f}" for f in floors))
    ok = [f for f in floors if worst[f] <= 0.05]
    print(f"highest floor with false abstention <= 0.05 on every set and language: {max(ok) if ok else 'none'}")


if __name__ == "__main__":
    main()
