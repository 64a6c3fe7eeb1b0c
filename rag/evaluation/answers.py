"""Answers on the external sets (``rag eval --answers``): what ``ask`` says, scored against the
sets' gold spans, and whether it abstains when the gold paragraph is taken away.

For a fixed-seed sample of each external set's questions (``--answer-sample``, default
:data:`DEFAULT_ANSWER_SAMPLE`), ``ask`` runs against the set's index, as users ask, in whatever
mode the settings choose (extractive, ``RAG_LLM=local``, written answers), and each answer gets:

- ``answer_in_text``: a gold answer string occurs in the answer text, matched script-blind as
  the gold set's metric of that name (:func:`rag.evaluation.metrics.answer_in_texts`); an
  abstention does not hold one. ``answer_in_text_or_value``: that, or every number of a numeric
  gold answer (:func:`numeric_answer`) is stated in the answer by value (``330億`` =
  ``33,000,000,000`` = ``330 亿``; ``2.5萬`` = ``25,000``; ``25%`` = ``百分之二十五``).
- ``exact_match`` and ``f1``: the CMRC 2018 definitions (:func:`cmrc_em`, :func:`cmrc_f1`) of the
  whole answer text (citation markers removed) against the gold spans, the best over them.
- ``best_sentence_f1`` and ``best_sentence_containment``: the same F1 of the answer's sentence
  that scores best, and whether that sentence contains a gold answer. An extractive answer
  quotes whole sentences, so its EM and F1 against a span are low by construction; these say
  whether the sentence it quotes is the one holding the span.
- ``answer_in_citations``: a gold answer string in a cited paragraph.

Near-miss unanswerables: the same questions against an index of the set's corpus *without*
their gold paragraphs (:func:`near_miss_folds`), right when the system abstains
(``near_miss_abstention_recall``); ``near_miss_answer_elsewhere`` counts the near misses it
answered from a remaining paragraph that holds the gold answer string too. The indexes
are built once into the eval cache and reused while the corpus and the sample are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rag.answer.written.numbers import stated_values
from rag.errors import RagError
from rag.evaluation.meaning import MeaningCheck, by_meaning, meaning_check_of
from rag.evaluation.metrics import (
    answer_in_texts,
    bootstrap_interval,
    match_key,
    mean,
    percentile,
    wilson_interval,
)
from rag.text.normalise import Normaliser
from rag.text.sentences import CJK, split_sentences, strip_markers

DEFAULT_ANSWER_SAMPLE = 100
ASK_K = 5
# A near-miss index leaves out at most this share of its corpus (more questions make more indexes):
# the question's neighbours (the other paragraphs of its article) must stay for the miss to be near.
MAX_DROPPED_SHARE = 0.2
# A gold answer is numeric (matched by value too) when besides its numbers it has at most this
# many words or ideographs: "1991年", "約5萬人", "1870 年到 1939 年", "33 billion US dollars".
NUMERIC_REST_MAX = 4

# Reported per group; the 0/1 ones get a Wilson interval, the means a bootstrap one.
RATES = ("answer_in_text", "answer_in_text_or_value", "answer_by_meaning", "answer_in_citations", "exact_match",
         "best_sentence_containment", "false_abstention_rate", "near_miss_abstention_recall",
         "near_miss_answer_elsewhere")
MEANS = ("f1", "best_sentence_f1")
# Per-question values paired with the baseline (report-only; higher is better but false abstention)
PAIRED_METRICS: dict[str, bool] = {
    "answer_in_text": True, "answer_in_text_or_value": True, "answer_by_meaning": True, "answer_in_citations": True,
    "exact_match": True, "f1": True, "false_abstention": False, "near_miss_abstention": True,
}
NEAR_MISS_PREFIX = "near-miss:"


# ------------------------------------------------------------------------------- CMRC 2018 EM / F1

_CJK_CHAR = re.compile(f"[{CJK}]")


def _is_punctuation(ch: str) -> bool:
    # CMRC 2018 removes its list of Chinese and ASCII marks; in the matching form (NFKC) full-width
    # marks are ASCII, so every Unicode punctuation and symbol character is removed.
    return unicodedata.category(ch)[0] in "PS"


def cmrc_segments(text: str, normaliser: Normaliser | None = None) -> list[str]:
    """CMRC 2018's ``mixed_segmentation`` (punctuation removed): each CJK character a segment,
    other runs split into words at whitespace; in the matching form (NFKC, case-folded, one
    script), so Traditional and Simplified, full- and half-width compare equal. (CMRC splits
    the other runs with NLTK's tokenizer; with punctuation removed, words at whitespace.)"""
    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            out.append("".join(buf))
            buf.clear()

    for ch in match_key(text, normaliser):
        if _is_punctuation(ch):
            continue  # dropped, not a boundary: "1,200" is one word, "U.S." is "us"
        if _CJK_CHAR.match(ch):
            flush()
            out.append(ch)
        elif ch.isspace():
            flush()
        else:
            buf.append(ch)
    flush()
    return out


def _longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common contiguous run of segments (CMRC's ``find_lcs``)."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def cmrc_f1(golds: Iterable[str], prediction: str, normaliser: Normaliser | None = None) -> float:
    """CMRC 2018 F1: precision and recall of the longest common run of segments between the
    prediction and a gold answer, the best over the gold answers (0.0 without any)."""
    pred = cmrc_segments(prediction, normaliser)
    best = 0.0
    for gold in golds:
        ans = cmrc_segments(gold, normaliser)
        common = _longest_common_run(ans, pred)
        if not common:
            continue
        p, r = common / len(pred), common / len(ans)
        best = max(best, 2 * p * r / (p + r))
    return best


def cmrc_em(golds: Iterable[str], prediction: str, normaliser: Normaliser | None = None) -> float:
    """CMRC 2018 exact match: 1.0 when the prediction equals a gold answer once punctuation and
    whitespace are removed (in the matching form), else 0.0."""
    pred = "".join(cmrc_segments(prediction, normaliser))
    return 1.0 if pred and any("".join(cmrc_segments(g, normaliser)) == pred for g in golds) else 0.0


# ------------------------------------------------------------------------------- numbers by value

_NUMBER_RUN = re.compile(
    r"(?:百分之)?\s*(?:\d[\d,]*(?:\.\d+)?|[零〇一二两三四五六七八九十百千万亿]{2,})"
    r"(?:\s*(?:hundred\s+thousand|hundred\s+million|thousand|million|billion|trillion|万亿|百万|千万|万|亿))?"
    r"(?:\s*(?:%|percent\b|per\s+cent\b))?")
_WORD = re.compile(rf"[{CJK}]|[^\W\d_]+")


def numeric_answer(answer: str) -> bool:
    """True when ``answer`` states a number and, besides its numbers, at most
    :data:`NUMERIC_REST_MAX` words or ideographs (units, "年", "約", "to")."""
    form = match_key(answer)
    if not stated_values(answer):
        return False
    rest = _NUMBER_RUN.sub(" ", form)
    return len(_WORD.findall(rest)) <= NUMERIC_REST_MAX


def answer_by_value(golds: Iterable[str], text: str) -> bool:
    """True when, for some numeric gold answer, every number it states is stated in ``text`` by
    value (and as a percentage when it is one)."""
    have = stated_values(text)
    for gold in golds:
        if gold and numeric_answer(gold) and stated_values(gold) <= have:
            return True
    return False


# ------------------------------------------------------------------------------- per question


def _answer_text(answer: str) -> str:
    return strip_markers(answer, tidy=True)


def _sentences(text: str) -> list[str]:
    spans = split_sentences(text, markers=False)
    return [text[a:b] for a, b in spans] or ([text] if text.strip() else [])


def score_answer(svc: Any, query: Mapping[str, Any], normaliser: Normaliser | None = None,
                 meaning: MeaningCheck | None = None) -> dict[str, Any]:
    """One answerable question of an external set through ``ask``: a row of answer metrics
    (``answer_by_meaning`` too when ``meaning`` is given: :mod:`rag.evaluation.meaning`)."""
    spans = [a for a in query.get("answers", []) if a]
    golds = spans + [a for a in query.get("answers_en", []) if a and a not in spans]
    row: dict[str, Any] = {"id": query["id"], "lang": query.get("lang", ""), "question": query["question"],
                           "answerable": True, "gold": list(query["gold"]), "answers": golds}
    try:
        t0 = time.perf_counter()
        ans = svc.ask(query["question"], ASK_K)
        row["latency_ms"] = (time.perf_counter() - t0) * 1000
    except RagError as e:  # a refused question is a miss everywhere
        row.update(error=str(e), abstained=False, answer="", cited=[], answer_in_text=False,
                   answer_in_text_or_value=False, answer_in_citations=False, exact_match=0.0, f1=0.0,
                   best_sentence_f1=0.0, best_sentence_containment=False)
        return row
    text = "" if ans.abstained else _answer_text(ans.answer)
    cited_texts = [t for c in ans.citations for t in (c.text, c.original_text) if t]
    in_text = bool(text) and answer_in_texts(golds, [text], normaliser)
    sentences = _sentences(text)
    f1s = [cmrc_f1(golds, s, normaliser) for s in sentences]
    best = max(range(len(f1s)), key=lambda i: f1s[i], default=None)
    row.update(
        abstained=bool(ans.abstained), answer=ans.answer, cited=[c.para_id for c in ans.citations],
        answer_chars=len(text),
        answer_in_text=in_text,
        answer_in_text_or_value=in_text or (bool(text) and answer_by_value(golds, text)),
        answer_in_citations=answer_in_texts(spans, cited_texts, normaliser),
        exact_match=cmrc_em(golds, text, normaliser) if text else 0.0,
        f1=cmrc_f1(golds, text, normaliser) if text else 0.0,
        best_sentence_f1=f1s[best] if best is not None else 0.0,
        best_sentence_containment=best is not None and answer_in_texts(golds, [sentences[best]], normaliser),
    )
    by_meaning(meaning, row, query["question"], golds, text)
    return row


def score_near_miss(svc: Any, query: Mapping[str, Any], dropped: Sequence[str],
                    normaliser: Normaliser | None = None) -> dict[str, Any]:
    """The question against an index without its gold paragraphs: right when it abstains.
    ``answer_elsewhere``: it answered citing a remaining paragraph that holds a gold answer string
    (the set answers it twice; counted apart, not as right)."""
    row: dict[str, Any] = {"id": query["id"], "lang": query.get("lang", ""), "question": query["question"],
                           "answerable": False, "dropped": list(query["gold"]), "fold_dropped": len(dropped)}
    try:
        ans = svc.ask(query["question"], ASK_K)
    except RagError as e:
        row.update(error=str(e), abstained=False, answer="", cited=[])
        return row
    cited_texts = [t for c in ans.citations for t in (c.text, c.original_text) if t]
    spans = [a for a in query.get("answers", []) if a]
    # Answered from another paragraph that holds the gold answer too: then a near miss is not wrong.
    row.update(abstained=bool(ans.abstained), answer=ans.answer, cited=[c.para_id for c in ans.citations],
               answer_elsewhere=not ans.abstained and answer_in_texts(spans, cited_texts, normaliser))
    return row


# ------------------------------------------------------------------------------- near-miss indexes


def near_miss_folds(queries: Sequence[Mapping[str, Any]], n_paragraphs: int,
                    share: float = MAX_DROPPED_SHARE) -> list[list[Mapping[str, Any]]]:
    """The questions split into folds, in order, each fold's gold paragraphs at most ``share`` of
    the corpus (one fold whenever they fit): one near-miss index per fold."""
    budget = max(1, int(n_paragraphs * share))
    folds: list[list[Mapping[str, Any]]] = []
    current: list[Mapping[str, Any]] = []
    dropped: set[str] = set()
    for q in queries:
        gold = set(q["gold"])
        if current and len(dropped | gold) > budget:
            folds.append(current)
            current, dropped = [], set()
        current.append(q)
        dropped |= gold
    if current:
        folds.append(current)
    return folds


def near_miss_index(
    cache: Path, name: str, corpus: Path, corpus_digest: str, dropped: set[str],
    open_or_build: Callable[[Path, list[Path]], Any],
) -> tuple[Any, Path]:
    """The service of ``name``'s corpus without the ``dropped`` paragraphs, built once into
    ``<cache>/eval-index/<set>-nearmiss-<hash>/`` (the reduced corpus beside it, ``…-corpus/``)."""
    key = hashlib.sha256((corpus_digest + "\0" + "\0".join(sorted(dropped))).encode()).hexdigest()[:16]
    stem = f"{name.replace('/', '-')}-nearmiss-{key}"
    index_dir = cache / "eval-index" / stem
    source = cache / "eval-index" / f"{stem}-corpus" / "corpus.jsonl"
    if not source.is_file():
        source.parent.mkdir(parents=True, exist_ok=True)
        tmp = source.with_suffix(".tmp")
        with corpus.open(encoding="utf-8") as fh, tmp.open("w", encoding="utf-8") as out:
            for line in fh:
                if line.strip() and json.loads(line)["id"] not in dropped:
                    out.write(line if line.endswith("\n") else line + "\n")
        tmp.replace(source)
    svc = open_or_build(index_dir, [source])
    for pid in sorted(dropped):  # the point of the index: the gold is really gone
        try:
            svc.paragraph(pid)
        except RagError:
            continue
        raise RagError(f"near-miss index {index_dir} still holds gold paragraph {pid}: delete it and rerun")
    return svc, index_dir


# ------------------------------------------------------------------------------- the block


def run_answers(
    svc: Any, chosen: Sequence[Mapping[str, Any]], *, name: str, corpus: Path, corpus_digest: str, cache: Path,
    open_or_build: Callable[[Path, list[Path]], Any], normaliser: Normaliser | None = None,
) -> dict[str, Any]:
    """The ``answers`` block of an external set: ``chosen`` asked against ``svc`` (the set's
    index) and, as near misses, against indexes without their gold paragraphs."""
    t0 = time.perf_counter()
    meaning = meaning_check_of(svc)
    rows = [score_answer(svc, q, normaliser, meaning) for q in chosen]
    with corpus.open(encoding="utf-8") as fh:
        n_paragraphs = sum(1 for line in fh if line.strip())
    near: list[dict[str, Any]] = []
    index_dirs: list[str] = []
    for fold in near_miss_folds(chosen, n_paragraphs):
        dropped = {g for q in fold for g in q["gold"]}
        print(f"eval: {name}: near-miss index without {len(dropped)} gold paragraphs", file=sys.stderr)
        nm_svc, index_dir = near_miss_index(cache, name, corpus, corpus_digest, dropped, open_or_build)
        index_dirs.append(str(index_dir))
        near += [score_near_miss(nm_svc, q, sorted(dropped), normaliser) for q in fold]
    by_id = {r["id"]: r for r in near}
    ordered = [by_id[q["id"]] for q in chosen]
    return {"n_sample": len(chosen), "near_miss_indexes": index_dirs,
            "groups": answer_groups(rows, ordered), "rows": rows, "near_miss_rows": ordered,
            "outcomes": answer_outcomes(rows, ordered), "seconds": round(time.perf_counter() - t0, 1)}


def aggregate_answers(rows: Sequence[Mapping[str, Any]], near: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics of one group: rates and means, each with its 95% interval (``intervals``)."""
    out: dict[str, Any] = {"n": len(rows), "n_near_miss": len(near)}
    values: dict[str, list[float]] = {
        m: [1.0 if r.get(m) else 0.0 for r in rows]
        for m in ("answer_in_text", "answer_in_text_or_value", "answer_in_citations", "best_sentence_containment")
    }
    if any("answer_by_meaning" in r for r in rows):  # a local model checked the meaning (an abstention: not right)
        values["answer_by_meaning"] = [1.0 if r.get("answer_by_meaning") else 0.0 for r in rows]
    values["exact_match"] = [float(r.get("exact_match") or 0.0) for r in rows]
    values["f1"] = [float(r.get("f1") or 0.0) for r in rows]
    values["best_sentence_f1"] = [float(r.get("best_sentence_f1") or 0.0) for r in rows]
    values["false_abstention_rate"] = [1.0 if r.get("abstained") else 0.0 for r in rows]
    values["near_miss_abstention_recall"] = [1.0 if r.get("abstained") else 0.0 for r in near]
    values["near_miss_answer_elsewhere"] = [1.0 if r.get("answer_elsewhere") else 0.0 for r in near]
    intervals: dict[str, list[float]] = {}
    for m in RATES + MEANS:
        if m not in values:
            continue
        xs = values[m]
        out[m] = mean(xs)
        if not xs:
            continue
        lo, hi = wilson_interval(round(sum(xs)), len(xs)) if m in RATES else bootstrap_interval(xs)
        intervals[m] = [round(lo, 4), round(hi, 4)]
    out["intervals"] = intervals
    chars = [float(r["answer_chars"]) for r in rows if r.get("answer_chars")]
    out["answer_chars_p50"] = percentile(chars, 50)
    latencies = [float(r["latency_ms"]) for r in rows if r.get("latency_ms") is not None]
    out["latency_p50_ms"] = percentile(latencies, 50)
    return out


def answer_groups(rows: Sequence[Mapping[str, Any]], near: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Overall and per language."""
    groups = {"overall": aggregate_answers(rows, near)}
    for lang in sorted({r["lang"] for r in [*rows, *near] if r.get("lang")}):
        groups[lang] = aggregate_answers([r for r in rows if r.get("lang") == lang],
                                         [r for r in near if r.get("lang") == lang])
    return groups


def answer_outcomes(rows: Sequence[Mapping[str, Any]], near: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per-question values for the baseline comparison (``regression.compare_set`` with
    :data:`PAIRED_METRICS`); a near miss is its own question, ``near-miss:<id>``."""
    out = []
    checked = any("answer_by_meaning" in r for r in rows)  # a local model checked the meaning
    for r in rows:
        values = {m: float(r.get(m) or 0.0) for m in ("answer_in_text", "answer_in_text_or_value",
                                                       "answer_in_citations", "exact_match")}
        if checked:
            values["answer_by_meaning"] = 1.0 if r.get("answer_by_meaning") else 0.0
        values["f1"] = round(float(r.get("f1") or 0.0), 6)
        values["false_abstention"] = 1.0 if r.get("abstained") or r.get("error") else 0.0
        out.append({"id": r["id"], "lang": r.get("lang", ""), "question": r.get("question", ""), "values": values})
    for r in near:
        out.append({"id": NEAR_MISS_PREFIX + r["id"], "lang": r.get("lang", ""), "question": r.get("question", ""),
                    "values": {"near_miss_abstention": 1.0 if r.get("abstained") else 0.0}})
    return out


def for_json(block: Mapping[str, Any], keep_rows: int = 200) -> dict[str, Any]:
    """The block as ``results.json`` keeps it: the rows that missed (capped), not every row."""
    out = dict(block)
    rows = out.pop("rows", [])
    near = out.pop("near_miss_rows", [])
    out["misses"] = [r for r in rows if not r.get("answer_in_text_or_value")][:keep_rows]
    out["near_miss_answered"] = [r for r in near if not r.get("abstained")][:keep_rows]
    return out
