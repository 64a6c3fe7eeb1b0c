"""Compare answer-prompt framings for generated answers on dev-set questions (never gold).

English questions over Chinese paragraphs (xquad/en-zh-dev) and Chinese ones (xquad/zh-dev):
each question is asked over its gold paragraph and the paragraph after it in the corpus (a
distractor of the same article), in a seeded order, through the local model and the citation
check (``rag.answer.written``). Per framing and language it prints the share of answers whose
text holds an answer string (script-blind), the share written in English (English questions),
removed/repaired sentences, and generation time. A framing name ``X+quotes`` is framing X with
the source sentence quoted after each English sentence (``CheckedStream(quote_sources=True)``).

    OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/answer_prompts.py [N per set] [framing,...]
"""

from __future__ import annotations

import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "xquad"
QUOTE = re.compile(r" ?「[^」]*」(?:\[\d+\])+")  # a quoted source sentence (quote_sources)
SETS = {"en": ROOT / "en-zh-dev", "zh-Hans": ROOT / "zh-dev"}


def load(folder: Path, n: int, seed: int = 7) -> tuple[list[dict], dict[str, dict], list[str]]:
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8")]
    queries = [json.loads(line) for line in (folder / "queries.jsonl").open(encoding="utf-8")]
    random.Random(seed).shuffle(queries)
    return queries[:n], {p["id"]: p for p in corpus}, [p["id"] for p in corpus]


def main() -> None:
    from rag.answer.written.checks import written_in_english
    from rag.answer.written.prompt import FRAMINGS
    from rag.answer.written.stream import UnusableGeneration, generated_answer
    from rag.config import Settings
    from rag.embedding import get_encoder
    from rag.evaluation.metrics import answer_in_texts
    from rag.llm.engine import get_local_model
    from rag.llm.generate import LocalGenerator
    from rag.llm.weights import resolve_model_path
    from rag.question import Question
    from rag.text.normalise import Normaliser
    from rag.types import CITATION_MARKER_ADDED, CITATION_MARKER_MOVED, CITATION_REMOVED, Hit

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else [f"{f}+quotes" for f in FRAMINGS]
    settings = Settings(llm="local")
    model = get_local_model(resolve_model_path(settings.llm_model_path, settings.cache_dir), threads=2, cache_mb=64)
    encoder = get_encoder(settings)
    normaliser = Normaliser()
    rows = []
    for lang, folder in SETS.items():
        queries, paras, order = load(folder, n)
        for q in queries:
            gold = q["gold"][0]
            nxt = order[(order.index(gold) + 1) % len(order)]
            pair = [gold, nxt]
            random.Random(q["id"]).shuffle(pair)
            hits = [Hit(pid, pid.rsplit(":", 1)[0], paras[pid]["text"], 1.0, title=paras[pid].get("title", ""))
                    for pid in pair]
            question = Question.make(q["question"], normaliser, None)
            for name in names:
                gen = LocalGenerator(model, timeout_s=60)
                t0 = time.perf_counter()
                try:
                    framing, _, extra = name.partition("+")
                    ans = generated_answer(question, hits, gen, encoder=encoder, framing=framing,
                                           quote_sources=extra == "quotes")
                    text, warnings, used = ans.answer, ans.warnings, True
                except UnusableGeneration as exc:
                    text, warnings, used = "", exc.warnings, False
                rows.append({
                    "framing": name, "lang": q.get("lang") or lang, "id": q["id"], "answer": text,
                    "ok": used and answer_in_texts(q["answers"], [text]),
                    "ok_own_words": used and answer_in_texts(q["answers"], [QUOTE.sub("", text)]),
                    "english": written_in_english(text) if used else None,
                    "removed": sum(w.code == CITATION_REMOVED for w in warnings),
                    "repaired": sum(w.code in (CITATION_MARKER_ADDED, CITATION_MARKER_MOVED) for w in warnings),
                    "used": used, "seconds": time.perf_counter() - t0,
                })
                print(json.dumps(rows[-1], ensure_ascii=False), file=sys.stderr, flush=True)
    print(f"\n{n} questions per set, gold paragraph + one distractor\n")
    print("| framing | lang | answer in text | 95% CI | in its own words | English | cited answer | removed | repaired "
          "| p50 s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        for lang in SETS:
            rs = [r for r in rows if r["framing"] == name and r["lang"] == lang]
            if not rs:
                continue
            ok = [1.0 if r["ok"] else 0.0 for r in rs]
            boots = sorted(statistics.mean(random.Random(i).choices(ok, k=len(ok))) for i in range(1000))
            eng = [r["english"] for r in rs if r["english"] is not None]
            own = statistics.mean(1.0 if r["ok_own_words"] else 0.0 for r in rs)
            print(f"| {name} | {lang} | {statistics.mean(ok):.3f} | [{boots[25]:.2f}, {boots[974]:.2f}] | {own:.3f} | "
                  f"{(sum(eng) / len(eng)) if eng and lang == 'en' else float('nan'):.2f} | "
                  f"{sum(r['used'] for r in rs) / len(rs):.2f} | {sum(r['removed'] for r in rs)} | "
                  f"{sum(r['repaired'] for r in rs)} | {statistics.median(r['seconds'] for r in rs):.1f} |")


if __name__ == "__main__":
    main()
