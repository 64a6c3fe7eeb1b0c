"""The extractive answer: the sentences of the top paragraphs that best answer the question (lexical
overlap of normalised units, weighted by rarity, plus a small prior for the paragraph's rank),
each followed by its ``[n]``; the cited paragraphs are the citations, numbered in the order they
are listed, and only paragraphs a sentence was taken from are cited. The hits given are already
above the relevance floor (``rag/answer/compose.py`` abstains below it).

Headlines, captions and credits (``rag/text/headlines.py``) are not quoted while any other
sentence of the hits can be; they stay in the cited paragraph's text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.answer.abstain import abstain
from rag.answer.citations import make_citation
from rag.answer.frame import lead_in
from rag.question import Question
from rag.text.headlines import label_lines
from rag.text.language import is_chinese_text
from rag.text.normalise import Normaliser, convert_script
from rag.text.sentences import content_chars, split_sentences, units
from rag.types import Answer, Hit, Notice

MAX_PARAGRAPHS = 3  # paragraphs an extractive answer draws sentences from
MAX_SENTENCES = 3
MAX_ANSWER_CHARS = 400  # further sentences are added only while the answer stays under this
MIN_SENTENCE_CHARS = 6  # shorter lines (headings, bylines) are not candidate sentences
MIN_OVERLAP = 0.2  # weighted share of the question's units a sentence needs for the lexical mode
RELATIVE_OVERLAP = 0.6  # a further sentence needs this share of the best sentence's overlap
SEARCH_HIGHLIGHTS = 2  # highlighted sentences per search hit
_FRAME_ZH_OVER_EN = {"zh-Hant": "來源（英文原文）：", "zh-Hans": "来源（英文原文）："}
_CHUNK_START = re.compile(r"@(\d+)$")


@dataclass
class _Sentence:
    rank: int  # index of the hit
    position: int  # index among the paragraph's candidate sentences
    start: int
    end: int
    units: frozenset[str]
    label: str | None = None  # "headline", "title", "caption" or "credit": not quoted (rag.text.headlines)
    recall: float = 0.0
    score: float = 0.0


def _sentences(hit: Hit, rank: int, normaliser: Normaliser | None = None) -> list[_Sentence]:
    """The paragraph's sentences, each labelled when it lies in a headline, caption or credit line;
    their units in ``normaliser``'s matching form (the question's)."""
    spans = split_sentences(hit.text, min_chars=MIN_SENTENCE_CHARS)
    if not spans and hit.text.strip():  # a short paragraph is its own sentence
        stripped = hit.text.strip()
        start = hit.text.index(stripped)
        spans = [(start, start + len(stripped))]
    labels = label_lines(hit.text, hit.title)
    out = []
    for i, (a, b) in enumerate(spans):
        label = next((kind for la, lb, kind in labels if la <= a and b <= lb), None)
        out.append(_Sentence(rank, i, a, b, units(hit.text[a:b], normaliser), label))
    return out


def _quotable(cands: list[_Sentence]) -> list[_Sentence]:
    """The candidates that are not headlines, captions or credits; all of them when none is."""
    body = [c for c in cands if c.label is None]
    return body or cands


def _idf(question: frozenset[str], cands: Sequence[_Sentence]) -> dict[str, float]:
    """Rarer question units weigh more: ``log(1 + N / (1 + df))`` over the candidate sentences."""
    n = len(cands)
    return {u: math.log(1 + n / (1 + sum(1 for c in cands if u in c.units))) for u in question}


def _score(question: frozenset[str], cands: list[_Sentence]) -> None:
    weights = _idf(question, cands)
    total = sum(weights.values())
    for c in cands:
        c.recall = sum(w for u, w in weights.items() if u in c.units) / total if total else 0.0
        # The rank prior and the lead position only break near-ties between sentences.
        c.score = c.recall + 0.1 / (1 + c.rank) + (0.02 if c.position == 0 else 0.0)


def _near_duplicate(a: _Sentence, b: _Sentence) -> bool:
    if not a.units or not b.units:
        return False
    return len(a.units & b.units) / len(a.units | b.units) > 0.7


def _length(s: _Sentence) -> int:
    return s.end - s.start


def _select_lexical(hits: Sequence[Hit], cands: list[_Sentence]) -> list[_Sentence]:
    ranked = sorted(cands, key=lambda c: (-c.score, c.rank, c.position))
    best = ranked[0]
    chosen = [best]
    used = _length(best)
    for c in ranked[1:]:
        if len(chosen) >= MAX_SENTENCES:
            break
        if c.recall < max(MIN_OVERLAP, RELATIVE_OVERLAP * best.recall):
            continue
        if any(_near_duplicate(c, o) for o in chosen) or used + _length(c) > MAX_ANSWER_CHARS:
            continue
        chosen.append(c)
        used += _length(c)
    return chosen


def _chunk_start(hit: Hit) -> int:
    m = _CHUNK_START.search(hit.chunk_id or "")
    return int(m.group(1)) if m else 0


def _select_positional(hits: Sequence[Hit], cands: list[_Sentence], labelled: list[_Sentence]) -> list[_Sentence]:
    """No lexical signal (an English question over Chinese text): the top paragraph's lead.

    A sentence of the top hit that shares a number or name with the question comes first;
    else the first sentence of the best-matching chunk; a short one gets its successor. The top
    hit is the best-ranked one with a quotable sentence (a paragraph that is all caption is not).
    """
    if not cands:
        return []
    if any(h.best_sentence for h in hits):
        return _select_by_sentence_vectors(hits, cands, labelled)
    lead = min(c.rank for c in cands)
    top = [c for c in cands if c.rank == lead]
    matched = [c for c in top if c.recall > 0]
    if matched:
        first = max(matched, key=lambda c: (c.recall, -c.position))
    else:
        start = _chunk_start(hits[lead])
        first = next((c for c in top if c.end > start), top[0])
    chosen = [first]
    nxt = next((c for c in top if c.position == first.position + 1), None)
    if nxt is not None and content_chars(hits[lead].text[first.start : first.end]) < 50:
        if _length(first) + _length(nxt) <= MAX_ANSWER_CHARS:
            chosen.append(nxt)
    return chosen


def _select_by_sentence_vectors(
    hits: Sequence[Hit], cands: list[_Sentence], labelled: list[_Sentence]
) -> list[_Sentence]:
    """Each top paragraph's sentence closest to the question, as retrieval measured it.

    ``labelled`` are all sentences, headlines included: when the closest sentence is a
    headline or caption, the paragraph's next quotable sentence stands in for it.

    With no lexical overlap to check (an English question over Chinese text) the top paragraph
    is right only about 60% of the time, so every paragraph above the floor (up to
    MAX_PARAGRAPHS) contributes its best sentence and is cited.
    """
    chosen: list[_Sentence] = []
    for rank, hit in enumerate(hits):
        if hit.best_sentence is None:
            continue
        start, end = hit.best_sentence
        mine = [c for c in labelled if c.rank == rank]
        best = max(mine, key=lambda c: min(c.end, end) - max(c.start, start), default=None)
        if best is None or min(best.end, end) <= max(best.start, start):
            continue
        if best.label is not None and best not in cands:  # closest is a headline: the body after it
            after = [c for c in cands if c.rank == rank and c.start >= best.end]
            if not after:
                continue
            best = after[0]
        if sum(_length(o) for o in chosen) + _length(best) > MAX_ANSWER_CHARS and chosen:
            break
        chosen.append(best)
    return chosen or [min(cands, key=lambda c: (c.rank, c.position))]


def quotable_spans(hit: Hit, normaliser: Normaliser | None = None) -> list[tuple[int, int]]:
    """``[start, end)`` of the sentences of ``hit`` an answer may quote (headlines, captions and
    credits left out while any other sentence is there)."""
    return [(c.start, c.end) for c in _quotable(_sentences(hit, 0, normaliser))]


def select_sentences(question: Question, hits: Sequence[Hit]) -> list[tuple[int, int, int]]:
    """``(hit index, start, end)`` of the sentences that best answer ``question``, best first."""
    labelled = [s for rank, hit in enumerate(hits) for s in _sentences(hit, rank, question.normaliser)]
    cands = _quotable(labelled)
    if not cands:
        return []
    _score(question.units, cands)
    if max(c.recall for c in cands) >= MIN_OVERLAP:
        chosen = _select_lexical(hits, cands)
    else:
        chosen = _select_positional(hits, cands, labelled)
    return [(c.rank, c.start, c.end) for c in chosen]


def best_spans(question: Question, text: str, *, limit: int = SEARCH_HIGHLIGHTS) -> list[tuple[int, int]]:
    """Spans of the sentences of ``text`` most related to ``question`` (none when nothing overlaps)."""
    hit = Hit(para_id="", doc_id="", text=text, score=0.0)
    cands = _quotable(_sentences(hit, 0, question.normaliser))
    if not cands:
        return []
    _score(question.units, cands)
    best = max(c.recall for c in cands)
    if best < MIN_OVERLAP:
        return []
    keep = [c for c in cands if c.recall >= max(MIN_OVERLAP, RELATIVE_OVERLAP * best)]
    keep = sorted(keep, key=lambda c: -c.recall)[:limit]
    return sorted((c.start, c.end) for c in keep)


def extractive_answer(
    question: Question,
    hits: Sequence[Hit],
    *,
    config: str | None = None,
    warnings: Sequence[Notice] = (),
) -> Answer:
    """The extractive answer over ``hits`` (already above the relevance floor)."""
    lang = question.lang
    picked = select_sentences(question, hits[:MAX_PARAGRAPHS])
    if not picked:
        return abstain(lang, config, warnings, reason="no sentence of the retrieved paragraphs could be quoted")
    order = sorted(picked)  # by hit rank, then position in the paragraph
    ranks = list(dict.fromkeys(rank for rank, _, _ in order))
    number = {rank: i for i, rank in enumerate(ranks, 1)}
    citations = [
        make_citation(number[rank], hits[rank], [(a, b) for r, a, b in order if r == rank], config)
        for rank in ranks
    ]
    quoted = [(cit.text[a:b], cit.n) for cit in citations for a, b in cit.highlights]  # in paragraph order
    quoted_cjk = is_chinese_text(" ".join(text for text, _ in quoted))
    if lang == "en" and quoted_cjk:
        # The system's own words are English (one lead-in built from the question); the source's
        # sentences follow verbatim, quoted and cited, as a written answer quotes its evidence.
        return Answer(lead_in(question.standalone, len(citations))
                      + " ".join(f"「{text.strip()}」[{n}]" for text, n in quoted),
                      False, tuple(citations), {}, tuple(warnings))
    body = " ".join(f"{text} [{n}]" for text, n in quoted)
    if lang != "en" and not quoted_cjk:
        frame = _FRAME_ZH_OVER_EN[lang]
        body = (convert_script(frame, config) if config else frame) + body
    return Answer(body, False, tuple(citations), {}, tuple(warnings))
