"""Frozen records that cross module boundaries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Removal:
    """One piece of text that cleaning removed or changed, for the audit report."""

    kind: str  # "pinyin", "html", "boilerplate", "promo", "counter", "blank_join", ...
    text: str  # what was removed (or the original of what was changed)
    line: int | None = None  # 1-based line of the raw text where it happened, when known


@dataclass(frozen=True)
class Paragraph:
    """The unit of citation. ``text`` is the cleaned text exactly as shown to users.

    A short heading line is kept as the first line of the paragraph it heads
    (``heading`` repeats it so callers can render it apart).
    """

    para_id: str  # "<doc_id>#p<n>" (or the id given by a .jsonl corpus)
    doc_id: str
    n: int  # 1-based position in the cleaned document
    text: str
    heading: str | None = None


@dataclass(frozen=True)
class Document:
    doc_id: str  # stable slug of the path under the corpus root
    title: str
    source: str  # URL when known, else the path
    sha256: str  # of the raw bytes
    paragraphs: tuple[Paragraph, ...]
    date: str | None = None  # ISO date when known
    path: str | None = None  # path of the file, relative to the corpus root when possible
    removed: tuple[Removal, ...] = ()
    flags: tuple[str, ...] = ()  # e.g. "mojibake: 3 runs" for the audit report


@dataclass(frozen=True)
class Chunk:
    """What gets embedded: a piece of one paragraph, ``paragraph.text[start:end] == text``."""

    chunk_id: str  # "<para_id>@<start>"
    para_id: str
    doc_id: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class Hit:
    """One ranked paragraph from retrieval, with its fused and component scores."""

    para_id: str
    doc_id: str
    text: str
    score: float  # fused, in [0, 1]
    dense_score: float | None = None  # cosine of the best chunk
    lexical_score: float | None = None  # raw BM25 of the best chunk
    title: str = ""
    source: str = ""
    date: str | None = None
    chunk_id: str | None = None
    relevance: float | None = None  # calibrated probability that this paragraph answers (rag.retrieval.relevance)
    best_sentence: tuple[int, int] | None = None  # [start, end) of the sentence closest to the query
    judge: float | None = None  # the language model's P(this paragraph answers), when RAG_LLM=local

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    para_id: str
    title: str
    source: str
    text: str  # the whole paragraph (display script)
    score: float
    highlights: tuple[tuple[int, int], ...] = ()  # [start, end) spans in ``text``
    date: str | None = None
    original_text: str | None = None  # set when the display script differs from the source
    judge: float | None = None  # the language model's P(this paragraph answers), when RAG_LLM=local

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["highlights"] = [list(h) for h in self.highlights]
        return d


@dataclass(frozen=True)
class Notice:
    """A warning that comes with an answer: a stable ``code`` for programs (the eval counts
    codes), and the ``text`` people read (the JSON bodies carry the text only)."""

    code: str  # one of the constants below, e.g. CITATION_REMOVED
    text: str

    def __str__(self) -> str:
        return self.text


# Notice codes. The citation check of a written answer:
CITATION_REMOVED = "citation.removed"  # a sentence no cited source supports was removed
CITATION_MARKER_ADDED = "citation.marker_added"  # a sentence without a marker got its source's
CITATION_MARKER_MOVED = "citation.marker_moved"  # a marker moved to the source that supports it
CITATION_MARKERS_DROPPED = "citation.markers_dropped"  # markers naming no listed source were removed
# What the reader gets instead of a written answer, or of all of it:
FALLBACK_NOTHING_CITED = "fallback.nothing_cited"  # no written sentence cited a supporting source
FALLBACK_GENERATOR_FAILED = "fallback.generator_failed"  # the generator failed before a checked sentence
FALLBACK_MISCONFIGURED = "fallback.misconfigured"  # RAG_LLM_BASE_URL & co. do not make a generator
FALLBACK_NO_WRITER = "fallback.no_writer"  # a written answer was asked for; no model writes on this server
GENERATOR_INCOMPLETE = "generator.incomplete"  # the generator failed after a checked sentence
FALLBACK_NO_SPAN = "fallback.no_span"  # the answer the model copied is not in the paragraphs word for word
# An English answer over Chinese text whose frame is the template, not the model's sentence:
FRAME_TEMPLATE = "frame.template"
# The answerability judge (a model server's) failed for this question: cited without it
JUDGE_UNAVAILABLE = "judge.unavailable"
# A notice read back from its JSON text, which does not carry the code:
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Answer:
    answer: str
    abstained: bool
    citations: tuple[Citation, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: tuple[Notice, ...] = ()
    abstain_reason: str | None = None  # why nothing was cited (set when ``abstained``)
    mode: str = "extractive"  # "generated": written by a language model from the cited paragraphs

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "mode": self.mode,
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "citations": [c.to_dict() for c in self.citations],
            "timings_ms": dict(self.timings_ms),
            "warnings": [w.text for w in self.warnings],
        }
