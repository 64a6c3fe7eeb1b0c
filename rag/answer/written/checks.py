"""Whether a source paragraph supports a written sentence, and the verdict on each sentence."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rag.answer.written.markers import MARKER, cited_numbers, normalise_markers, strip_markers
from rag.answer.written.numbers import number_faithful, number_forms
from rag.text.normalise import cjk_ratio
from rag.text.sentences import (
    content_chars,
    matching_form,
    overlap,
    question_units,
    split_sentences,
    units,
)

if TYPE_CHECKING:
    from rag.embedding import Encoder

# A sentence is supported by a paragraph when at least this share of its matching units
# (CJK bigrams, English word stems, numbers) occur in the paragraph. Faithful paraphrases of
# Chinese news text keep well over half of their bigrams; an invented sentence keeps few.
SUPPORT_MIN = 0.30
# ... and when every number (digits, or Chinese numerals: 一千二百 = 1200) and every quoted name
# of the sentence occurs in the cited paragraph, script-blind.
CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,}")
_QUOTED = re.compile(r"「([^」]{2,40})」|『([^』]{2,40})』|“([^”]{2,40})”|《([^》]{2,60})》|\"([^\"]{2,40})\"")
# Sentences shorter than this (letters/ideographs) are not checked: "見下文。", "Yes."
CHECK_MIN_CHARS = 6


def quoted_names(text: str) -> list[str]:
    """Names and phrases a sentence puts in quotes or title marks (「」『』“”《》"")."""
    return [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]


def supports(sentence: str, paragraph: str) -> bool:
    """Whether ``paragraph`` supports ``sentence``.

    Every number of the sentence (in any of its forms) and every quoted name must occur in the
    paragraph, compared script-blind; then at least SUPPORT_MIN of its matching units. A
    sentence in another script than the paragraph (an English sentence over Chinese text)
    cannot be compared word for word: only its numbers and quoted names are checked.
    """
    if not number_faithful(sentence, paragraph):
        return False
    have = matching_form(paragraph)
    if any(matching_form(q) not in have for q in quoted_names(sentence)):
        return False
    if cjk_ratio(sentence) < 0.5 and any(matching_form(run) not in have for run in CJK_RUN.findall(sentence)):
        return False  # a name an English sentence keeps in Chinese is written as the source writes it
    if (cjk_ratio(sentence) >= 0.5) != (cjk_ratio(paragraph) >= 0.5):
        return True
    wanted = units(sentence)
    if not wanted:
        return True
    return overlap(wanted, units(paragraph)) >= SUPPORT_MIN


def check_citations(
    text: str, n_citations: int, *, paragraphs: Sequence[str] | None = None
) -> tuple[str, list[str], list[str]]:
    """Enforce the citation rules on generated ``text``.

    Returns ``(clean_text, removed_markers, flagged_sentences)``: markers outside
    ``1..n_citations`` are removed (and listed, e.g. ``["[7]"]``); with ``paragraphs``
    (``paragraphs[i]`` is source ``i + 1``), a sentence that cites no valid source, or whose cited
    sources do not support it, is listed in ``flagged_sentences`` (its text without markers).
    """
    if paragraphs is not None and len(paragraphs) != n_citations:
        raise ValueError(f"got {len(paragraphs)} paragraphs for {n_citations} citations")
    removed: list[str] = []

    def keep(m: re.Match[str]) -> str:
        if 1 <= int(m.group(1)) <= n_citations:
            return m.group()
        removed.append(m.group())
        return ""

    clean = MARKER.sub(keep, normalise_markers(text))
    clean = re.sub(r"[ \t]+([。！？，、；：.,!?;:])", r"\1", clean)
    clean = re.sub(r"[ \t]{2,}", " ", clean).strip()
    flagged: list[str] = []
    if paragraphs is None:
        return clean, removed, flagged
    for start, end in split_sentences(clean):
        sentence = clean[start:end]
        cited = sorted({int(d) for d in MARKER.findall(sentence)})
        plain = strip_markers(sentence)
        if content_chars(plain) < CHECK_MIN_CHARS:
            continue
        if not cited or not any(supports(plain, paragraphs[c - 1]) for c in cited):
            flagged.append(plain)
    return clean, removed, flagged



def _evidenced(plain: str, text: str) -> bool:
    """``text`` supports ``plain`` with positive evidence: the same script's wording, or across
    scripts at least one number or name of the sentence found in it (not merely unrefuted)."""
    if not supports(plain, text):
        return False
    if (cjk_ratio(plain) >= 0.5) == (cjk_ratio(text) >= 0.5):
        return True
    return bool(number_forms(plain) or quoted_names(plain) or CJK_RUN.findall(plain))


def most_similar(encoder: Encoder, plain: str, texts: Sequence[str]) -> int:
    """The index of the text in ``texts`` closest to ``plain`` by the embedder (cross-lingual)."""
    vec = encoder.encode([plain], kind="query")[0]
    return int((encoder.encode(list(texts), kind="passage") @ vec).argmax())


def _best_source(plain: str, texts: Sequence[str], encoder: Encoder | None) -> int | None:
    """The 1-based source that supports ``plain`` best (None when none does with evidence): by
    cross-lingual similarity with the embedder when given, else by shared matching units."""
    candidates = [i for i, t in enumerate(texts, 1) if _evidenced(plain, t)]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    if encoder is not None:
        return candidates[most_similar(encoder, plain, [texts[i - 1] for i in candidates])]
    wanted = units(plain)
    return max(candidates, key=lambda i: overlap(wanted, units(texts[i - 1])))


def restates(plain: str, question: str) -> bool:
    """True when ``plain`` adds nothing to ``question``: every matching unit of the sentence is
    one of the question's (``The chairman of the council is [1].`` for "Who chairs the council?")."""
    have = units(question) | question_units(question)
    said = question_units(plain)
    return bool(said) and said <= have


_EVIDENCE = re.compile(r" ?「.*?」(?:\[\d+\])+")  # a quoted source sentence may hold 「」 itself
_LATIN_WORD = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")


def own_words(text: str) -> str:
    """A generated answer without the source sentences quoted after its English sentences."""
    return _EVIDENCE.sub("", text).strip()


def written_in_english(text: str) -> bool:
    """Whether the model's own sentences of ``text`` are English: at least three English words,
    and one for every ten Chinese characters at most (names and titles kept in Chinese, as the
    rules ask, do not make an English sentence Chinese; a Chinese sentence has no English frame)."""
    own = strip_markers(own_words(text))
    words = len(_LATIN_WORD.findall(own))
    cjk = sum(1 for ch in own if "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff")
    return words >= 3 and words * 10 >= cjk


def check_sentence(
    sentence: str, texts: Sequence[str], encoder: Encoder | None = None, *, question: str = ""
) -> tuple[str | None, str]:
    """One generated sentence against the numbered ``texts``: ``(shown, verdict)``.

    ``verdict`` is ``"kept"`` (it cites a source that supports it, or is too short to check),
    ``"repaired"`` (it had no marker; the marker of the source that supports it is added),
    ``"moved"`` (the source it cites does not support it, another one does, with positive
    evidence: its marker is replaced by that one's) or ``"removed"`` (``shown`` is None): it
    names only sources that do not exist, restates the question, or no source supports it.
    """
    sentence = sentence.strip()
    plain = strip_markers(sentence)
    n = len(texts)
    marked = cited_numbers(sentence)
    cited = [c for c in marked if 1 <= c <= n]
    if marked and not cited:
        return None, "removed"  # it named only sources that do not exist
    if question and restates(plain, question):
        return None, "removed"  # no answer in it, only the question again
    if content_chars(plain) < CHECK_MIN_CHARS or any(supports(plain, texts[c - 1]) for c in cited):
        return sentence, "kept"
    best = _best_source(plain, texts, encoder)
    if best is None:
        return None, "removed"
    return _with_marker(plain, best), "moved" if cited else "repaired"


def _with_marker(plain: str, n: int) -> str:
    """``plain`` citing source ``n``: ``… [n].`` in English, ``…。[n]`` in Chinese."""
    if cjk_ratio(plain) < 0.5 and plain[-1:] in ".!?":
        return f"{plain[:-1]} [{n}]{plain[-1]}"
    return f"{plain}[{n}]"


def sentence_joiner(before: str) -> str:
    """What goes between a kept sentence and the next: nothing after Chinese, a space after English."""
    return "" if cjk_ratio(strip_markers(before)) >= 0.5 else " "

