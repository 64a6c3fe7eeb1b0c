"""Paragraphs -> chunks (what gets embedded); a chunk never crosses a paragraph boundary.

A paragraph up to ``max_chars`` is one chunk. A longer one is cut at sentence ends
(``。！？!?；;``, ``. `` and line breaks), falling back to clause ends and spaces, and only then
to a hard cut; consecutive chunks overlap by about ``overlap`` characters, whole sentences where
possible. Invariant: ``paragraph.text[c.start:c.end] == c.text`` and the chunks cover the text.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from rag.errors import InputError
from rag.text.sentences import ELLIPSIS, sentence_cuts
from rag.types import Chunk, Document, Paragraph

_CLAUSE = re.compile(r"(?:[，、,：:]\s*|\s+)")


def _check(max_chars: int, overlap: int) -> None:
    if max_chars < 1:
        raise InputError(f"max_chars must be >= 1, got {max_chars}")
    if not 0 <= overlap < max_chars:
        raise InputError(f"overlap must be 0..max_chars-1 ({max_chars - 1}), got {overlap}")


def _boundaries(rx: re.Pattern[str], text: str) -> list[int]:
    return sorted({m.end() for m in rx.finditer(text) if 0 < m.end() < len(text)})


def _sentence_boundaries(text: str) -> list[int]:
    """Positions *after* each sentence end and the closing quotes and spaces after it.

    Chunking's variant of the one splitter: an ellipsis ends a sentence, so does any full stop
    followed by a space ("Mr. " too: a chunk may cut there), and markers are not looked for.
    """
    cuts = sentence_cuts(text, extra_ends=ELLIPSIS, english="space", markers=False, spaces=True)
    return sorted({c for c in cuts if 0 < c < len(text)})


def _last_in(bounds: list[int], lo: int, hi: int) -> int | None:
    """The largest boundary b with lo < b <= hi."""
    i = bisect_right(bounds, hi) - 1
    return bounds[i] if i >= 0 and bounds[i] > lo else None


def _first_in(bounds: list[int], lo: int, hi: int) -> int | None:
    """The smallest boundary b with lo <= b < hi."""
    i = bisect_left(bounds, lo)
    return bounds[i] if i < len(bounds) and bounds[i] < hi else None


def split_spans(text: str, max_chars: int = 400, overlap: int = 60) -> list[tuple[int, int]]:
    """``[start, end)`` spans of the chunks of ``text`` (see the module docstring)."""
    _check(max_chars, overlap)
    n = len(text)
    if n <= max_chars:
        return [(0, n)]
    sentences = _sentence_boundaries(text)
    clauses = _boundaries(_CLAUSE, text)
    spans: list[tuple[int, int]] = []
    start, prev_end = 0, 0
    while True:
        limit = start + max_chars
        if limit >= n:
            spans.append((start, n))
            return spans
        end = (_last_in(sentences, prev_end, limit) or _last_in(clauses, prev_end, limit)
               or limit)
        spans.append((start, end))
        # Start the next chunk at a sentence start inside the overlap window, else a clause
        # start, else mid-text; never at or before the current start.
        lo = max(end - overlap, start + 1)
        nxt = _first_in(sentences, lo, end) or _first_in(clauses, lo, end)
        if nxt is None:
            nxt = lo if overlap and lo < end else end
        start, prev_end = nxt, end


def chunk_paragraph(p: Paragraph, max_chars: int = 400, overlap: int = 60) -> list[Chunk]:
    """The chunks of one paragraph; ``chunk_id = f"{para_id}@{start}"``."""
    return [
        Chunk(f"{p.para_id}@{s}", p.para_id, p.doc_id, p.text[s:e], s, e)
        for s, e in split_spans(p.text, max_chars, overlap)
    ]


def chunk_documents(docs: Iterable[Document], max_chars: int = 400, overlap: int = 60) -> list[Chunk]:
    """All chunks of all paragraphs of ``docs``, in document and paragraph order."""
    _check(max_chars, overlap)
    return [c for d in docs for p in d.paragraphs for c in chunk_paragraph(p, max_chars, overlap)]


def sentence_chunks(p: Paragraph, min_chars: int = 8) -> list[Chunk]:
    """One extra vector per sentence of a multi-sentence paragraph (ids ``<para_id>@s<start>``).

    A question usually matches one sentence; a whole-paragraph vector dilutes it, most of all
    for English questions over Chinese text. Sentences shorter than ``min_chars`` (headings,
    bylines) are skipped; a paragraph of one sentence gets none (its chunk already is that).
    """
    spans = []
    for m_start, m_end in _sentence_spans(p.text):
        start, end = m_start, m_end
        while start < end and p.text[start].isspace():
            start += 1
        while end > start and p.text[end - 1].isspace():
            end -= 1
        if end - start >= min_chars:
            spans.append((start, end))
    if len(spans) < 2:
        return []
    return [Chunk(f"{p.para_id}@s{a}", p.para_id, p.doc_id, p.text[a:b], a, b) for a, b in spans]


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    bounds = [0, *_sentence_boundaries(text), len(text)]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
