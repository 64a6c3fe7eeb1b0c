"""Cited answers from ranked paragraphs: extractive by default, generated when a server is set.

Extractive answer: the sentences of the top paragraphs that best answer the question (lexical
overlap of normalised units, weighted by rarity, plus a small prior for the paragraph's rank),
each followed by its ``[n]``; the cited paragraphs are the citations, numbered in the order they
are listed, and only paragraphs a sentence was taken from are cited. Below the relevance floor
the answer abstains, in the question's language, with no citations.

Display script: ``script`` converts what is shown (answer and paragraph text) with OpenCC; a
citation keeps the source text in ``original_text`` and its highlights index the shown text.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rag.config import Settings
from rag.errors import InputError
from rag.generate import (
    Generator,
    build_messages,
    check_citations,
    cited_numbers,
    describe_failure,
    generator_from_settings,
    renumber,
    strip_markers,
)
from rag.normalise import cjk_ratio, convert_script
from rag.question import Question, detect_lang  # noqa: F401  (detect_lang: re-exported)
from rag.relevance import DEFAULT_FLOOR
from rag.sentences import content_chars, overlap, split_sentences, units
from rag.types import Answer, Citation, Hit

MAX_PARAGRAPHS = 3  # paragraphs an extractive answer draws sentences from
MAX_SENTENCES = 3
MAX_ANSWER_CHARS = 400  # further sentences are added only while the answer stays under this
MIN_SENTENCE_CHARS = 6  # shorter lines (headings, bylines) are not candidate sentences
MIN_OVERLAP = 0.2  # weighted share of the question's units a sentence needs for the lexical mode
RELATIVE_OVERLAP = 0.6  # a further sentence needs this share of the best sentence's overlap
MAX_GEN_PARAGRAPHS = 5  # paragraphs shown to the generator
SEARCH_HIGHLIGHTS = 2  # highlighted sentences per search hit

SCRIPTS: dict[str, str | None] = {
    "original": None,
    "hant": "s2t",
    "hans": "t2s",
    "hk": "s2hk",
    "tw": "s2twp",
}

ABSTAIN_MESSAGES = {
    "zh-Hant": "找不到可靠的來源回答這個問題。",
    "zh-Hans": "找不到可靠的来源回答这个问题。",
    "en": "No source found that answers this question.",
}
_FRAME_EN_OVER_ZH = "The sources (in Chinese, untranslated) say: "
_FRAME_ZH_OVER_EN = {"zh-Hant": "來源（英文原文）：", "zh-Hans": "来源（英文原文）："}

_CHUNK_START = re.compile(r"@(\d+)$")


# -- small public helpers -------------------------------------------------------------------


def _relevance(hit: Hit) -> float:
    """The calibrated answer probability when retrieval set it, else the ranking score."""
    return hit.relevance if hit.relevance is not None else hit.score


def relevance_floor(settings: Settings | None) -> float:
    """The calibrated relevance (``Hit.relevance``, see rag/relevance.py) below which a hit is
    not cited: ``RAG_MIN_SCORE`` when set, else the calibrated default."""
    if settings is not None and settings.min_score is not None:
        return settings.min_score
    return DEFAULT_FLOOR


def script_config(script: str | None) -> str | None:
    """The OpenCC config of a display script name (None = show the original text)."""
    if script is None:
        return None
    try:
        return SCRIPTS[script]
    except KeyError:
        raise InputError(f"script must be one of {', '.join(SCRIPTS)}; got {script!r}") from None


_STREAM_CUT = re.compile(
    r"[。！？!?；;：:\n]+[」』”’）)\"']*[ \t]*|(?<=[a-z0-9)\]\"'])\.(?:[ \t]+|$)"
)
_STREAM_MARKER = re.compile(r"[ \t]*\[\d+\][ \t]*")


def stream_pieces(answer_text: str) -> Iterator[str]:
    """Pieces of an answer for streaming: sentences and ``[n]`` markers; they join to the input."""
    cuts = {0, len(answer_text)}
    for m in _STREAM_MARKER.finditer(answer_text):
        cuts.update((m.start(), m.end()))
    for m in _STREAM_CUT.finditer(answer_text):
        cuts.add(m.end())
    points = sorted(cuts)
    for a, b in zip(points, points[1:], strict=False):
        if b > a:
            yield answer_text[a:b]


# -- sentences and their scores ---------------------------------------------------------------


@dataclass
class _Sentence:
    rank: int  # index of the hit
    position: int  # index among the paragraph's candidate sentences
    start: int
    end: int
    units: frozenset[str]
    recall: float = 0.0
    score: float = 0.0


def _sentences(hit: Hit, rank: int) -> list[_Sentence]:
    spans = split_sentences(hit.text, min_chars=MIN_SENTENCE_CHARS)
    if not spans and hit.text.strip():  # a short paragraph is its own sentence
        stripped = hit.text.strip()
        start = hit.text.index(stripped)
        spans = [(start, start + len(stripped))]
    return [_Sentence(rank, i, a, b, units(hit.text[a:b])) for i, (a, b) in enumerate(spans)]


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


def _select_positional(hits: Sequence[Hit], cands: list[_Sentence]) -> list[_Sentence]:
    """No lexical signal (an English question over Chinese text): the top paragraph's lead.

    A sentence of the top hit that shares a number or name with the question comes first;
    else the first sentence of the best-matching chunk; a short one gets its successor.
    """
    top = [c for c in cands if c.rank == 0]
    if not top:
        return []
    if any(h.best_sentence for h in hits):
        return _select_by_sentence_vectors(hits, cands)
    matched = [c for c in top if c.recall > 0]
    if matched:
        first = max(matched, key=lambda c: (c.recall, -c.position))
    else:
        start = _chunk_start(hits[0])
        first = next((c for c in top if c.end > start), top[0])
    chosen = [first]
    nxt = next((c for c in top if c.position == first.position + 1), None)
    if nxt is not None and content_chars(hits[0].text[first.start : first.end]) < 50:
        if _length(first) + _length(nxt) <= MAX_ANSWER_CHARS:
            chosen.append(nxt)
    return chosen


def _select_by_sentence_vectors(hits: Sequence[Hit], cands: list[_Sentence]) -> list[_Sentence]:
    """Each top paragraph's sentence closest to the question, as retrieval measured it.

    With no lexical overlap to check (an English question over Chinese text) the top paragraph
    is right only about 60% of the time, so every paragraph above the floor (up to
    MAX_PARAGRAPHS) contributes its best sentence and is cited.
    """
    chosen: list[_Sentence] = []
    for rank, hit in enumerate(hits):
        if hit.best_sentence is None:
            continue
        start, end = hit.best_sentence
        mine = [c for c in cands if c.rank == rank]
        best = max(mine, key=lambda c: min(c.end, end) - max(c.start, start), default=None)
        if best is None or min(best.end, end) <= max(best.start, start):
            continue
        if sum(_length(o) for o in chosen) + _length(best) > MAX_ANSWER_CHARS and chosen:
            break
        chosen.append(best)
    return chosen or [next(c for c in cands if c.rank == 0)]


def select_sentences(question: Question, hits: Sequence[Hit]) -> list[tuple[int, int, int]]:
    """``(hit index, start, end)`` of the sentences that best answer ``question``, best first."""
    cands = [s for rank, hit in enumerate(hits) for s in _sentences(hit, rank)]
    if not cands:
        return []
    _score(question.units, cands)
    if max(c.recall for c in cands) >= MIN_OVERLAP:
        chosen = _select_lexical(hits, cands)
    else:
        chosen = _select_positional(hits, cands)
    return [(c.rank, c.start, c.end) for c in chosen]


def best_spans(question: Question, text: str, *, limit: int = SEARCH_HIGHLIGHTS) -> list[tuple[int, int]]:
    """Spans of the sentences of ``text`` most related to ``question`` (none when nothing overlaps)."""
    hit = Hit(para_id="", doc_id="", text=text, score=0.0)
    cands = _sentences(hit, 0)
    if not cands:
        return []
    _score(question.units, cands)
    best = max(c.recall for c in cands)
    if best < MIN_OVERLAP:
        return []
    keep = [c for c in cands if c.recall >= max(MIN_OVERLAP, RELATIVE_OVERLAP * best)]
    keep = sorted(keep, key=lambda c: -c.recall)[:limit]
    return sorted((c.start, c.end) for c in keep)


# -- display script and citations ---------------------------------------------------------


def display(
    text: str, config: str | None, spans: Sequence[tuple[int, int]] = ()
) -> tuple[str, list[tuple[int, int]]]:
    """``text`` in the display script and ``spans`` moved onto it.

    The text is converted sentence by sentence, so a conversion that changes lengths (phrase
    tables such as ``s2twp``: U盘 -> 隨身碟) still maps every sentence boundary exactly.
    """
    if not config:
        return text, list(spans)
    cuts = sorted(
        {
            0,
            len(text),
            *(p for s in split_sentences(text) for p in s),
            *(p for s in spans for p in s),
        }
    )
    pieces = [convert_script(text[a:b], config) for a, b in zip(cuts, cuts[1:], strict=False)]
    new_at = {cuts[0]: 0}
    pos = 0
    for cut, piece in zip(cuts[1:], pieces, strict=True):
        pos += len(piece)
        new_at[cut] = pos
    return "".join(pieces), [(new_at[a], new_at[b]) for a, b in spans]


def make_citation(
    n: int, hit: Hit, spans: Sequence[tuple[int, int]], config: str | None
) -> Citation:
    shown, moved = display(hit.text, config, sorted(set(spans)))
    return Citation(
        n=n,
        doc_id=hit.doc_id,
        para_id=hit.para_id,
        title=convert_script(hit.title, config) if config else hit.title,
        source=hit.source,
        text=shown,
        score=hit.score,
        highlights=tuple(moved),
        date=hit.date,
        original_text=hit.text if shown != hit.text else None,
    )


def search_body(question: Question, hits: list[Hit], *, script: str = "original") -> dict[str, Any]:
    """The body of ``POST /api/search``: every hit as a citation, ``n`` = rank, with highlights."""
    config = script_config(script)
    return {
        "hits": [
            make_citation(n, hit, best_spans(question, hit.text), config).to_dict()
            for n, hit in enumerate(hits, 1)
        ]
    }


# -- answers ------------------------------------------------------------------------------


def _abstain(
    lang: str,
    config: str | None,
    warnings: Sequence[str] = (),
    timings: dict[str, float] | None = None,
    *,
    reason: str,
) -> Answer:
    message = ABSTAIN_MESSAGES[lang]
    if config and lang != "en":
        message = convert_script(message, config)
    return Answer(message, True, (), dict(timings or {}), tuple(warnings), reason)


def abstain_reason(hits: Sequence[Hit], floor: float) -> str:
    """Why nothing is cited: no paragraph retrieved, or the best one below the relevance floor."""
    if not hits:
        return "no paragraph was retrieved for this question"
    best = max(hits, key=_relevance)
    return (f"no paragraph reached the relevance floor {floor:.2f} (RAG_MIN_SCORE); the best, "
            f"{best.para_id}, scored {_relevance(best):.2f}")


def in_script(answer: Answer, script: str | None) -> Answer:
    """``answer`` (shown in the original script) converted to the display ``script``.

    The chat re-renders a shown answer with this when the script toggle changes, instead of
    asking again; the service converts its answers the same way, so both agree exactly.
    """
    config = script_config(script)
    if not config:
        return answer
    citations = tuple(
        replace(c, title=convert_script(c.title, config), text=shown, highlights=tuple(moved),
                original_text=c.text if shown != c.text else None)
        for c in answer.citations
        for shown, moved in [display(c.text, config, c.highlights)]
    )
    return replace(answer, answer=convert_script(answer.answer, config), citations=citations)


def extractive_answer(
    question: Question,
    hits: Sequence[Hit],
    *,
    config: str | None = None,
    warnings: Sequence[str] = (),
) -> Answer:
    """The extractive answer over ``hits`` (already above the relevance floor)."""
    lang = question.lang
    picked = select_sentences(question, hits[:MAX_PARAGRAPHS])
    if not picked:
        return _abstain(lang, config, warnings, reason="no sentence of the retrieved paragraphs could be quoted")
    order = sorted(picked)  # by hit rank, then position in the paragraph
    ranks = list(dict.fromkeys(rank for rank, _, _ in order))
    number = {rank: i for i, rank in enumerate(ranks, 1)}
    citations = [
        make_citation(number[rank], hits[rank], [(a, b) for r, a, b in order if r == rank], config)
        for rank in ranks
    ]
    parts = []
    for cit in citations:  # highlights are the picked sentences of that paragraph, in order
        parts.extend(f"{cit.text[a:b]} [{cit.n}]" for a, b in cit.highlights)
    body = " ".join(parts)
    quoted_cjk = cjk_ratio(body) >= 0.5
    if lang == "en" and quoted_cjk:
        body = _FRAME_EN_OVER_ZH + body
    elif lang != "en" and not quoted_cjk:
        frame = _FRAME_ZH_OVER_EN[lang]
        body = (convert_script(frame, config) if config else frame) + body
    return Answer(body, False, tuple(citations), {}, tuple(warnings))


def _sentence_spans_for(claims: Sequence[str], text: str) -> list[tuple[int, int]]:
    """For each generated claim, the paragraph sentence that shares most with it (if any)."""
    cands = [
        (a, b, units(text[a:b])) for a, b in split_sentences(text, min_chars=MIN_SENTENCE_CHARS)
    ]
    spans = []
    for claim in claims:
        wanted = units(claim)
        scored = [(overlap(wanted, u), a, b) for a, b, u in cands]
        if scored:
            share, a, b = max(scored)
            if share >= 0.15:
                spans.append((a, b))
    return spans


class _Fallback(Exception):
    """The generated answer is unusable; ``warnings`` go into the extractive answer's."""

    def __init__(self, warnings: Sequence[str]) -> None:
        super().__init__("; ".join(warnings))
        self.warnings = list(warnings)


def generated_answer(
    question: Question, hits: Sequence[Hit], generator: Generator, *, config: str | None = None
) -> Answer:
    """Ask ``generator`` over the numbered ``hits``; enforce the citation rules on its output.

    Raises :class:`_Fallback` when the output is unusable (no valid citation).
    """
    paragraphs = [h.text for h in hits]
    messages = build_messages(question.text, paragraphs, lang=question.lang, titles=[h.title for h in hits])
    raw = generator.complete(messages)
    clean, removed, flagged = check_citations(raw, len(hits), paragraphs=paragraphs)
    used = cited_numbers(clean)
    warnings = []
    if removed:
        warnings.append(
            f"citation check: removed marker(s) {' '.join(removed)} that name no listed source"
        )
    if not used:
        raise _Fallback(
            [*warnings, "generator answer cited no listed source; showing extractive answer"]
        )
    mapping = {old: new for new, old in enumerate(used, 1)}
    text = renumber(clean, mapping)
    for sentence in flagged:
        warnings.append(f"citation check: not supported by its cited source: {sentence[:120]}")
    claims_for: dict[int, list[str]] = {old: [] for old in used}
    for a, b in split_sentences(clean):
        sentence = clean[a:b]
        for old in cited_numbers(sentence):
            claims_for[old].append(strip_markers(sentence))
    citations = tuple(
        make_citation(
            mapping[old],
            hits[old - 1],
            _sentence_spans_for(claims_for[old], hits[old - 1].text),
            config,
        )
        for old in used
    )
    shown = convert_script(text, config) if config else text
    return Answer(shown, False, citations, {}, tuple(warnings))


def answer_from_hits(
    question: Question,
    hits: list[Hit],
    settings: Settings,
    *,
    script: str | None = None,
    generator: Generator | None = None,
) -> Answer:
    """The cited answer to ``question`` from ranked ``hits``.

    Abstains when there is no hit at or above the relevance floor. ``generator`` (default: built
    from ``RAG_LLM_BASE_URL`` when set) writes the answer from the numbered paragraphs; any
    failure falls back to the extractive answer with a warning.
    """
    t0 = time.perf_counter()
    script_config(script)  # a bad script name fails before any work
    answer = _answer_original(question, hits, settings, generator=generator, t0=t0)
    return in_script(answer, script)


def _answer_original(
    question: Question, hits: list[Hit], settings: Settings, *, generator: Generator | None, t0: float,
) -> Answer:
    """The answer in the source's own script (``in_script`` converts it for display)."""
    lang = question.lang
    floor = relevance_floor(settings)
    above = [h for h in hits if _relevance(h) >= floor]
    if not above:
        return _abstain(lang, None, timings={"answer": _ms(t0)}, reason=abstain_reason(hits, floor))
    warnings: list[str] = []
    if generator is None and settings.llm_base_url:
        try:
            generator = generator_from_settings(settings)
        except ValueError as exc:
            warnings.append(f"generator misconfigured: {exc}; showing extractive answer")
    if generator is not None:
        t1 = time.perf_counter()
        try:
            answer = generated_answer(question, above[:MAX_GEN_PARAGRAPHS], generator)
            return replace(answer, timings_ms={"generate": _ms(t1)})
        except _Fallback as exc:
            warnings.extend(exc.warnings)
        except Exception as exc:  # never an error page: any generator failure -> extractive
            warnings.append(describe_failure(exc))
    answer = extractive_answer(question, above, warnings=warnings)
    return replace(answer, timings_ms={"extract": _ms(t0)})


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


__all__ = [
    "ABSTAIN_MESSAGES",
    "abstain_reason",
    "in_script",
    "DEFAULT_FLOOR",
    "SCRIPTS",
    "answer_from_hits",
    "best_spans",
    "detect_lang",
    "display",
    "extractive_answer",
    "generated_answer",
    "relevance_floor",
    "script_config",
    "search_body",
    "select_sentences",
    "stream_pieces",
]
