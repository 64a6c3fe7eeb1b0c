"""English answers over Chinese paragraphs, written by the local model: extracted then framed
(``framed``, the default) against written freely (``free``, ``english_frame=False``).

Questions: the English gold questions (``evals/gold.jsonl``, lang en, answerable) and a fixed
sample of xquad/en-zh-dev (seeded). Each is asked over its gold paragraph and the paragraph
after it in its corpus (a distractor of the same document), in a seeded order, through
``answer_steps`` with the local model and no judge: this measures how the answer is written,
not retrieval. Per set and mode it prints:

- ``in text``: an answer string is in the answer, script-blind (quotes included);
- ``own words``: ... in the answer without its quoted source sentences (the frame, the span);
- ``English``: the answer's own prose is English: without its quotes and without the Chinese
  it keeps from the cited paragraphs (the copied span, names), no CJK is left, and it has at
  least three English words;
- ``fallback``: extractive instead of written; ``template``: the template frame was used;
- ``p50 s``: whole-answer time, median.

With both modes it then prints the paired change framed − free per set (each question asked in
both), with a 95% paired bootstrap interval (``rag.evaluation.metrics.bootstrap_interval`` of the
per-question differences). The embedder is loaded as a server loads it, so the written sentences
are checked as they are in the product. ``--json`` is written as the answers come (a stopped run
keeps them); ``--from-json`` prints the tables of an earlier run again.

    OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/english_answers.py [--gold N] [--xquad N]
        [--modes framed,free] [--json out.jsonl] [--timeout S] [--from-json out.jsonl]

Two cores run a question in 10-40 s per mode; start with ``--gold 5 --xquad 5``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
XQUAD = ROOT.parent / "shared" / "data" / "external" / "xquad" / "en-zh-dev"
_CJK = re.compile(r"[\u3400-\u9fff]+")
SEED = 7


def gold_items(n: int) -> list[tuple[dict, list[tuple[str, str, str]]]]:
    """English, answerable gold questions with (para_id, title, text) of their gold paragraph and
    the paragraph after it."""
    from rag.ingest.corpus import load_corpus

    docs, _ = load_corpus([ROOT / "corpus"])
    paras = [(p.para_id, d.title, p.text) for d in docs for p in d.paragraphs]
    index = {pid: i for i, (pid, _, _) in enumerate(paras)}
    items = []
    for line in (ROOT / "evals" / "gold.jsonl").open(encoding="utf-8"):
        q = json.loads(line)
        if q.get("lang") != "en" or not q.get("gold") or q["gold"][0] not in index or q.get("history"):
            continue
        i = index[q["gold"][0]]
        items.append((q, [paras[i], paras[(i + 1) % len(paras)]]))
    return items[:n]


def xquad_items(n: int) -> list[tuple[dict, list[tuple[str, str, str]]]]:
    if not XQUAD.is_dir():
        print(f"skipping xquad: {XQUAD} is absent")
        return []
    corpus = [json.loads(line) for line in (XQUAD / "corpus.jsonl").open(encoding="utf-8")]
    queries = [json.loads(line) for line in (XQUAD / "queries.jsonl").open(encoding="utf-8")]
    random.Random(SEED).shuffle(queries)
    order = [p["id"] for p in corpus]
    by_id = {p["id"]: p for p in corpus}
    items = []
    for q in queries[:n]:
        gold = q["gold"][0]
        nxt = order[(order.index(gold) + 1) % len(order)]
        items.append((q, [(pid, by_id[pid].get("title", ""), by_id[pid]["text"]) for pid in (gold, nxt)]))
    return items


def english_prose(answer: str, cited: list[str]) -> bool:
    """The answer's own prose is English: no CJK left once its quotes and the Chinese it keeps
    from the cited paragraphs are taken out, and at least three English words."""
    from rag.answer.written.checks import own_words
    from rag.text.english import written_words
    from rag.text.sentences import matching_form

    own = own_words(answer)
    have = [matching_form(t) for t in cited]
    left = _CJK.sub(lambda m: "" if any(matching_form(m.group()) in h for h in have) else m.group(), own)
    return not _CJK.search(left) and len(written_words(left)) >= 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gold", type=int, default=5, help="English gold questions (default 5)")
    parser.add_argument("--xquad", type=int, default=5, help="xquad/en-zh-dev questions, seeded (default 5)")
    parser.add_argument("--modes", default="framed,free", help="framed, free or both (default both)")
    parser.add_argument("--json", type=Path, help="write every answer here (JSONL), as it comes")
    parser.add_argument("--from-json", type=Path, help="print the tables of an earlier --json file and stop")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds a model call may take (default 120: a busy 2-core machine needs more than "
                             "RAG_LLM_TIMEOUT_S's 30 for a first, uncached prompt)")
    args = parser.parse_args()
    if args.from_json:
        rows = [json.loads(line) for line in args.from_json.open(encoding="utf-8")]
        report(rows, [m for m in ("framed", "free") if any(r["mode"] == m for r in rows)])
        return

    from rag.answer.compose import answer_steps
    from rag.answer.lexicon import Lexicon
    from rag.answer.steps import final_answer
    from rag.answer.written.checks import own_words
    from rag.config import Settings
    from rag.embedding import get_encoder
    from rag.evaluation.metrics import answer_in_texts
    from rag.llm.engine import get_local_model
    from rag.llm.generate import LocalGenerator
    from rag.llm.weights import resolve_model_path
    from rag.question import Question
    from rag.text.normalise import Normaliser
    from rag.types import FRAME_TEMPLATE, Hit

    settings = Settings(llm="local", llm_answers="generated", llm_base_url=None, min_score=None)
    model = get_local_model(resolve_model_path(settings.llm_model_path, settings.cache_dir), threads=2)
    generator = LocalGenerator(model, timeout_s=args.timeout)
    encoder = get_encoder(settings)
    normaliser = Normaliser()
    lexicon = Lexicon.from_report({"files": [str(ROOT / "corpus" / "glossary.tsv")]}, normaliser,
                                  cache_dir=settings.cache_dir)
    modes = [m for m in args.modes.split(",") if m]
    rows = []
    out = args.json.open("w", encoding="utf-8") if args.json else None
    gold, xquad = gold_items(args.gold), xquad_items(args.xquad)
    # the two sets interleaved: a run stopped early has both
    order = sorted([(i / len(gold), "gold", item) for i, item in enumerate(gold)]
                   + [(i / len(xquad), "xquad", item) for i, item in enumerate(xquad)], key=lambda t: t[:2])
    for _, name, (q, paras) in order:
        pair = list(paras)
        random.Random(q["id"]).shuffle(pair)
        hits = [Hit(pid, pid.split("#")[0], text, 1.0, title=title) for pid, title, text in pair]
        for mode in modes:
            t0 = time.perf_counter()
            ans = final_answer(answer_steps(Question.make(q["question"], normaliser), hits, settings,
                                            generator=generator, lexicon=lexicon, encoder=encoder,
                                            english_frame=mode == "framed"))
            seconds = time.perf_counter() - t0
            cited = [c.text for c in ans.citations]
            row = {
                "set": name, "mode": mode, "id": q["id"], "question": q["question"], "answer": ans.answer,
                "in_text": answer_in_texts(q["answers"], [ans.answer]),
                "own_words": answer_in_texts(q["answers"], [own_words(ans.answer)]),
                "english": english_prose(ans.answer, cited),
                "fallback": ans.mode != "generated",
                "template": any(w.code == FRAME_TEMPLATE for w in ans.warnings),
                "seconds": round(seconds, 2),
                "warnings": [w.text for w in ans.warnings],
            }
            rows.append(row)
            if out is not None:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
            print(f"{name:5} {mode:6} {seconds:5.1f}s {'+' if row['in_text'] else '-'} {ans.answer[:110]!r} "
                  f"{[w.code for w in ans.warnings]}", flush=True)
    report(rows, modes)


def report(rows: list[dict], modes: list[str]) -> None:
    """The table per set and mode, then the paired change framed − free."""
    from rag.evaluation.metrics import bootstrap_interval

    print(f"\n{'set':6} {'mode':7} {'n':>3} {'in text':>8} {'own words':>10} {'English':>8} {'fallback':>9} "
          f"{'template':>9} {'p50 s':>6}")
    for name in ("gold", "xquad"):
        for mode in modes:
            group = [r for r in rows if r["set"] == name and r["mode"] == mode]
            if not group:
                continue

            def share(key: str, rows: list[dict] = group) -> str:
                return f"{sum(r[key] for r in rows) / len(rows):.2f}"

            print(f"{name:6} {mode:7} {len(group):3} {share('in_text'):>8} {share('own_words'):>10} "
                  f"{share('english'):>8} {share('fallback'):>9} {share('template'):>9} "
                  f"{statistics.median(r['seconds'] for r in group):6.1f}")
    if set(modes) != {"framed", "free"}:
        return
    print(f"\nframed − free, paired (95% bootstrap interval)\n{'set':6} {'n':>3} {'in text':>22} "
          f"{'own words':>22} {'English':>22}")
    for name in ("gold", "xquad"):
        by = {(r["mode"], r["id"]): r for r in rows if r["set"] == name}
        ids = [i for m, i in by if m == "framed" and ("free", i) in by]
        if not ids:
            continue
        cells = []
        for key in ("in_text", "own_words", "english"):
            diffs = [float(by["framed", i][key]) - float(by["free", i][key]) for i in ids]
            lo, hi = bootstrap_interval(diffs)
            cells.append(f"{statistics.fmean(diffs):+.2f} [{lo:+.2f}, {hi:+.2f}]")
        print(f"{name:6} {len(ids):3} " + " ".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
