"""Sentence spans of Chinese and English text, the ``[n]`` citation marker, and the matching
units used to compare sentences.

One splitter, :func:`sentence_cuts` (and :func:`split_sentences` on top of it), serves every
module: chunking, answers and highlights, headlines, streaming and the chat. Where a caller
needs a variant it says so with a parameter; the end characters, closing quotes and marker
are defined once, here.

Spans are ``[start, end)`` offsets into the text as given, so they can be shown as highlights.
Units (CJK character bigrams, English words, numbers) are computed on the matching form of the
text (NFKC, case-folded, OpenCC to one script: the configured :class:`Normaliser`, ``t2s``
unless one is given), so Traditional and Simplified text compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Literal

from rag.text.english import EN_STOPWORDS, english_terms, light_stem
from rag.text.language import EN_QUESTION_WORDS_GLOSS, ZH_QUESTION_WORDS, ZH_QUESTION_WORDS_UNITS
from rag.text.normalise import Normaliser, _jieba

__all__ = [
    "CJK", "CLAUSE_ENDS", "CLOSERS", "ELLIPSIS", "ENGLISH_ENDS", "EN_STOPWORDS", "MARKER", "OPEN_MARKER",
    "PUNCTUATION", "SENTENCE_ENDS", "cjk_runs", "close_up", "content_chars", "content_words",
    "matching_form", "numbers", "overlap", "question_terms", "question_units", "sentence_cuts",
    "split_sentences", "strip_markers", "units",
]

# The one set of sentence-end characters (Chinese and English).
SENTENCE_ENDS = "。！？!?；;"
# An ellipsis ends a sentence for chunking and cleaning, not for answers (a quoted "……" is
# mid-sentence more often than not).
ELLIPSIS = "…"
# Streaming also cuts at colons, so a long list arrives item by item.
CLAUSE_ENDS = "：:"
# The stops an English sentence ends with, which its citation marker goes before ("… [1]."):
# the full stop and SENTENCE_ENDS's ASCII ends but the semicolon (a clause's end).
ENGLISH_ENDS = ".!?"
# Punctuation that takes no space before it (a space a removed marker left is closed up).
PUNCTUATION = SENTENCE_ENDS + CLAUSE_ENDS + "，、.,"
# Closing quotes and brackets that belong to the sentence they close.
CLOSERS = "」』”’）)】〉》\"'"
# A citation marker ``[n]`` in an answer (group 1: n).
MARKER = re.compile(r"\[(\d+)\]")
# A marker still being written at the end of a streamed text ("…。[", "…。[1", "…【1, "), in any
# spelling a model uses for one (rag/answer/written/markers.py reads them as ``[n]``).
OPEN_MARKER = re.compile(r"[ \t]*[\[【［][\d\s,，、^]*$")

English = Literal["word", "space"]

_MARKERS = r"(?:[ \t]*\[\d+\])*"  # markers right after an end belong to that sentence
_ABBREV = frozenset("mr mrs ms dr prof st no vs etc inc ltd co jr sr e.g i.e".split())
_WORD_BEFORE = re.compile(r"([A-Za-z.]+)\.?$")


def _chars(chars: str) -> str:
    return "[" + re.escape(chars) + "]"


@lru_cache(maxsize=16)
def _end_rule(extra_ends: str, english: English, markers: bool, spaces: bool) -> re.Pattern[str]:
    """The sentence-end pattern of one variant (see :func:`sentence_cuts`)."""
    tail = _MARKERS if markers else ""
    ws = r"\s*" if spaces else ""
    run = f"{_chars(SENTENCE_ENDS + extra_ends)}+{_chars(CLOSERS)}*{tail}{ws}"
    if english == "word":
        stop = rf"(?<=[a-z0-9)\]\"'”’])\.[\"'”’)]*{tail}(?=\s|$){ws}"
    elif english == "space":
        stop = rf"\.{_chars(CLOSERS)}*(?=\s){ws}"
    else:
        raise ValueError(f"english must be 'word' or 'space', got {english!r}")
    newline = r"\n+" if spaces else r"\n"
    return re.compile(f"{run}|{stop}|{newline}")


def sentence_cuts(
    text: str, *, extra_ends: str = "", english: English = "word", markers: bool = True, spaces: bool = False
) -> list[int]:
    """Offsets just after each sentence end of ``text``, in order.

    A sentence ends at a run of :data:`SENTENCE_ENDS` (plus ``extra_ends``) with the closing
    quotes after it, at a newline, or at an English full stop:

    - ``english="word"`` (answers, highlights, the chat): a full stop after a lower-case word,
      a digit or a closer, followed by a space or the end, and not after an abbreviation
      ("Mr.", "e.g.");
    - ``english="space"`` (chunking, headlines): any full stop followed by whitespace.

    ``markers``: ``[n]`` citation markers right after an end belong to the sentence before
    them. ``spaces``: a cut comes after the whitespace that follows the end (the pieces then
    cover the text), else right after the end.
    """
    cuts = []
    for m in _end_rule(extra_ends, english, markers, spaces).finditer(text):
        if english == "word" and m.group().startswith("."):
            before = _WORD_BEFORE.search(text[: m.start()])
            if before and before.group(1).lower().rstrip(".") in _ABBREV:
                continue
        cuts.append(m.end())
    return cuts


def split_sentences(
    text: str, *, min_chars: int = 1, extra_ends: str = "", english: English = "word", markers: bool = True
) -> list[tuple[int, int]]:
    """``[start, end)`` spans of the sentences of ``text``, whitespace trimmed, in order.

    ``min_chars`` drops spans with fewer letters/digits/ideographs than that (headings, stray
    punctuation); their text stays in the paragraph, it just is not a candidate sentence.
    The other parameters pick the splitter's variant (:func:`sentence_cuts`).
    """
    cuts = [0, *sentence_cuts(text, extra_ends=extra_ends, english=english, markers=markers), len(text)]
    spans = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a and len(_CONTENT.findall(text[a:b])) >= min_chars:
            spans.append((a, b))
    return spans


def strip_markers(text: str, *, tidy: bool = False) -> str:
    """``text`` without its ``[n]`` markers; ``tidy``: also without the space they leave before
    punctuation (:func:`close_up`) and around the text."""
    text = MARKER.sub("", text)
    return close_up(text).strip() if tidy else text


_SPACE_BEFORE_PUNCTUATION = re.compile(rf"[ \t]+({_chars(PUNCTUATION)})")


def close_up(text: str) -> str:
    """``text`` without the spaces and tabs before its :data:`PUNCTUATION` ("done [1] ." -> "done [1].")."""
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)


# ---------------------------------------------------------------------------------------------
# Matching units.

# The ideographs of matching units (CJK unified ideographs, extension A, compatibility), as the
# body of a regex character class.
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RUN = re.compile(f"[{CJK}]+")
_LATIN = re.compile(r"[a-z0-9]+(?:[.'\-][a-z0-9]+)*")
_NUMBER = re.compile(r"\d[\d,.]*")
_CONTENT = re.compile(r"[\w\u3400-\u9fff]")

_ZH_STOP_CHARS = frozenset("的了是在和与及也都就而或被把之吗呢吧啊么")

# Without a configured normaliser (the index's, carried by the Question), matching uses the
# default settings' one: OpenCC t2s.
DEFAULT_MATCHING = Normaliser("t2s")


def matching_form(text: str, normaliser: Normaliser | None = None) -> str:
    """NFKC + case folding + OpenCC to one script: the form every comparison uses."""
    return (normaliser or DEFAULT_MATCHING).normalise(text)


@lru_cache(maxsize=4096)
def units(text: str, normaliser: Normaliser | None = None) -> frozenset[str]:
    """Matching units of ``text``: CJK bigrams (a lone character as itself), English word stems, numbers."""
    return _units_of(matching_form(text, normaliser), question=False)


@lru_cache(maxsize=4096)
def question_units(question: str, normaliser: Normaliser | None = None) -> frozenset[str]:
    """Units of a question without its question words and English function words."""
    form = ZH_QUESTION_WORDS_UNITS.sub(" ", matching_form(question, normaliser))
    return _units_of(form, question=True)


_WORDY = re.compile(r"^([\u3400-\u9fff]{2,}|[a-z][a-z0-9-]+|\d[\d.,]*)$")


@lru_cache(maxsize=4096)
def content_words(question: str, normaliser: Normaliser | None = None) -> tuple[str, ...]:
    """The question's content words (jieba, one script), without question and function words."""
    words = _jieba().lcut(matching_form(question, normaliser))
    return tuple(
        w for w in dict.fromkeys(words)
        if _WORDY.match(w) and w not in ZH_QUESTION_WORDS and w not in EN_STOPWORDS
    )


def question_terms(question: str) -> list[str]:
    """Terms of a question's Latin-script part for the English gloss (question words dropped as well)."""
    return english_terms(question, drop=EN_QUESTION_WORDS_GLOSS)


def _units_of(form: str, *, question: bool) -> frozenset[str]:
    out: set[str] = set()
    for run in _CJK_RUN.findall(form):
        if len(run) == 1:
            if question and run in _ZH_STOP_CHARS:
                continue
            out.add(run)
            continue
        for i in range(len(run) - 1):
            bigram = run[i : i + 2]
            if question and (bigram[0] in _ZH_STOP_CHARS or bigram[1] in _ZH_STOP_CHARS):
                continue
            out.add(bigram)
    for word in _LATIN.findall(form):
        if word in EN_STOPWORDS or (len(word) == 1 and not word.isdigit()):
            continue
        out.add(light_stem(word))
    return frozenset(out)


def numbers(text: str, normaliser: Normaliser | None = None) -> frozenset[str]:
    """Digit strings of ``text`` with separators removed (``1,000`` -> ``1000``; ``1.5`` -> ``15``)."""
    return frozenset(re.sub(r"[,.]", "", n).rstrip() for n in _NUMBER.findall(matching_form(text, normaliser)))


def cjk_runs(text: str, min_chars: int = 1) -> list[str]:
    """The runs of :data:`CJK` ideographs in ``text`` at least ``min_chars`` long, in order."""
    return [run for run in _CJK_RUN.findall(text) if len(run) >= min_chars]


def content_chars(text: str) -> int:
    """Letters, digits and ideographs in ``text``."""
    return len(_CONTENT.findall(text))


def overlap(wanted: Iterable[str], have: frozenset[str]) -> float:
    """Share of ``wanted`` units found in ``have`` (0.0 when nothing is wanted)."""
    wanted = list(wanted)
    if not wanted:
        return 0.0
    return sum(1 for u in wanted if u in have) / len(wanted)
