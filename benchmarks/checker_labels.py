"""Precision and recall of the citation check on generated sentences labelled by hand.

Two steps:

    # 1. collect: the local model answers a fixed sample of gold questions over the paragraphs
    #    the judge passed; each sentence it wrote is stored with the paragraphs it could cite
    OMP_WAIT_POLICY=passive RAG_LLM=local .venv/bin/python benchmarks/checker_labels.py collect evals/checker/sentences.jsonl 30
    # a second, held-out sample: other questions than those of the first file
    OMP_WAIT_POLICY=passive RAG_LLM=local .venv/bin/python benchmarks/checker_labels.py collect evals/checker/heldout.jsonl 40 evals/checker/sentences.jsonl
    # (a person then sets "label" on every row: "supported" when the cited paragraph states what
    #  the sentence says, "unsupported" otherwise, reading the paragraphs, not the checker's verdict)
    # 2. score: the check as it is now against those labels (no language model needed)
    .venv/bin/python benchmarks/checker_labels.py score evals/checker/sentences.jsonl

The first sample guided the number rules of the check (magnitudes, bounds); the held-out
sample, labelled before the check was run on it, is the measurement. "Flagged" is what the
reader never sees as written: removed, or kept only after a marker was
added (repaired). Precision: the share of removed sentences that were unsupported; recall: the
share of unsupported sentences removed. Wilson 95% intervals (the sample is small).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def collect(out: Path, n: int, skip: Path | None = None) -> None:
    from rag.answer.abstain import relevance_floor, relevance_of
    from rag.answer.compose import MAX_GEN_PARAGRAPHS
    from rag.answer.written.markers import normalise_markers
    from rag.answer.written.prompt import answer_messages
    from rag.config import get_settings
    from rag.evaluation.goldset import load_gold
    from rag.evaluation.runner import default_gold, sample_gold
    from rag.llm.generate import LocalGenerator
    from rag.service import RagService
    from rag.text.sentences import split_sentences

    settings = get_settings()
    if settings.llm != "local":
        sys.exit("collect needs RAG_LLM=local")
    svc = RagService.open(Path(settings.index_dir), settings)
    gen = LocalGenerator(svc.judge.model, timeout_s=120)
    seen = {json.loads(line)["id"] for line in skip.open(encoding="utf-8")} if skip else set()
    items = [i for i in sample_gold(load_gold(default_gold()), n + len(seen), seed=7)
             if i.answerable and i.id not in seen][:n] if seen else \
        [i for i in sample_gold(load_gold(default_gold()), n) if i.answerable]
    rows = []
    for item in items:
        question = svc.question(item.question, list(item.history) or None)
        floor = relevance_floor(settings)
        hits = [h for h in svc.search(question, 5) if relevance_of(h) >= floor][: svc.judge.top_k]
        verdicts = svc.judge.judge(question.standalone, hits)
        passed = [h for h, v in zip(hits, verdicts, strict=True) if v.p_yes >= svc.judge.floor][:MAX_GEN_PARAGRAPHS]
        if not passed:
            continue
        raw = normalise_markers(gen.complete(answer_messages(question, passed)))
        for a, b in split_sentences(raw):
            rows.append({"id": item.id, "lang": item.lang, "question": question.standalone,
                         "sentence": raw[a:b], "paragraphs": [f"{h.title}\n{h.text}" if h.title else h.text
                                                               for h in passed],
                         "para_ids": [h.para_id for h in passed], "label": None})
        print(f"{item.id}: {len(split_sentences(raw))} sentences", file=sys.stderr, flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} sentences to {out}; label them, then run `score`")


def score(path: Path) -> None:
    from rag.answer.written.checks import check_sentence
    from rag.config import get_settings
    from rag.embedding import get_encoder

    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    unlabelled = [r for r in rows if r.get("label") not in ("supported", "unsupported")]
    if unlabelled:
        sys.exit(f"{len(unlabelled)} rows have no label ('supported' or 'unsupported')")
    encoder = get_encoder(get_settings())
    table: dict[str, dict[str, int]] = {}
    for r in rows:
        _, verdict = check_sentence(r["sentence"], r["paragraphs"], encoder, question=r["question"])
        r["verdict"] = verdict
        for group in (r["lang"], "all"):
            t = table.setdefault(group, {"n": 0, "unsupported": 0, "removed": 0, "removed_unsupported": 0,
                                         "repaired": 0, "kept_unsupported": 0})
            bad = r["label"] == "unsupported"
            t["n"] += 1
            t["unsupported"] += bad
            t["removed"] += verdict == "removed"
            t["removed_unsupported"] += verdict == "removed" and bad
            t["repaired"] += verdict == "repaired"
            t["kept_unsupported"] += verdict != "removed" and bad
    print(f"{len(rows)} labelled sentences from {path}\n")
    print("| group | sentences | unsupported (label) | removed | precision | 95% CI | recall | 95% CI | "
          "repaired | unsupported shown |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for group, t in sorted(table.items(), key=lambda kv: kv[0] == "all"):
        p_lo, p_hi = wilson(t["removed_unsupported"], t["removed"])
        r_lo, r_hi = wilson(t["removed_unsupported"], t["unsupported"])
        prec = t["removed_unsupported"] / t["removed"] if t["removed"] else float("nan")
        rec = t["removed_unsupported"] / t["unsupported"] if t["unsupported"] else float("nan")
        print(f"| {group} | {t['n']} | {t['unsupported']} | {t['removed']} | {prec:.2f} | [{p_lo:.2f}, {p_hi:.2f}] | "
              f"{rec:.2f} | [{r_lo:.2f}, {r_hi:.2f}] | {t['repaired']} | {t['kept_unsupported']} |")
    print("\nMisjudged (label vs verdict):")
    for r in rows:
        if (r["label"] == "unsupported") != (r["verdict"] == "removed"):
            print(f"- {r['id']} [{r['label']} / {r['verdict']}] {r['sentence'][:110]}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "collect":
        collect(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 30,
                Path(sys.argv[4]) if len(sys.argv) > 4 else None)
    elif len(sys.argv) == 3 and sys.argv[1] == "score":
        score(Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
