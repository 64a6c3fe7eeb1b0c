"""Whether a source paragraph supports a written sentence, and the verdict on each sentence."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rag.answer.written.markers import MARKER, cited_numbers, normalise_markers, strip_markers
from rag.answer.written.numbers import number_faithful, number_forms
from rag.text.english import written_words
from rag.text.language import is_chinese_text
from rag.text.normalise import Normaliser
from rag.text.sentences import (
    CJK,
    ENGLISH_ENDS,
    cjk_runs,
    close_up,
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
# of the sentence occurs in the cited paragraph, script-blind (in the question's matching form;
# numbers are read in their own, rag/answer/written/numbers.py).
_QUOTED = re.compile(r"「([^」]{2,40})」|『([^』]{2,40})』|“([^”]{2,40})”|《([^》]{2,60})》|\"([^\"]{2,40})\"")
# Sentences shorter than this (letters/ideographs) are not checked: "見下文。", "Yes."
CHECK_MIN_CHARS = 6


def quoted_names(text: str) -> list[str]:
    """Names and phrases a sentence puts in quotes or title marks (「」『』“”《》"")."""
    return [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]


def kept_names(text: str) -> list[str]:
    """The Chinese names and terms of ``text``: its runs of two ideographs or more."""
    return cjk_runs(text, 2)


def supports(sentence: str, paragraph: str, normaliser: Normaliser | None = None) -> bool:
    """Whether ``paragraph`` supports ``sentence``.

    Every number of the sentence (in any of its forms) and every quoted name must occur in the
    paragraph, compared script-blind; then at least SUPPORT_MIN of its matching units. A
    sentence in another script than the paragraph (an English sentence over Chinese text)
    cannot be compared word for word: only its numbers and quoted names are checked.
    Names and units are compared in ``normaliser``'s matching form (the index's).
    """
    if not number_faithful(sentence, paragraph):
        return False
    have = matching_form(paragraph, normaliser)
    if any(matching_form(q, normaliser) not in have for q in quoted_names(sentence)):
        return False
    chinese = is_chinese_text(sentence)
    if not chinese and any(matching_form(run, normaliser) not in have for run in kept_names(sentence)):
        return False  # a name an English sentence keeps in Chinese is written as the source writes it
    if chinese != is_chinese_text(paragraph):
        return True
    wanted = units(sentence, normaliser)
    if not wanted:
        return True
    return overlap(wanted, units(paragraph, normaliser)) >= SUPPORT_MIN


def check_citations(
    text: str, n_citations: int, *, paragraphs: Sequence[str] | None = None, normaliser: Normaliser | None = None
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
    clean = close_up(clean)
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
        if not cited or not any(supports(plain, paragraphs[c - 1], normaliser) for c in cited):
            flagged.append(plain)
    return clean, removed, flagged


def _evidenced(plain: str, text: str, normaliser: Normaliser | None) -> bool:
    """``text`` supports ``plain`` with positive evidence: the same script's wording, or across
    scripts at least one number or name of the sentence found in it (not merely unrefuted)."""
    if not supports(plain, text, normaliser):
        return False
    if is_chinese_text(plain) == is_chinese_text(text):
        return True
    return bool(number_forms(plain) or quoted_names(plain) or kept_names(plain))


def most_similar(encoder: Encoder, plain: str, texts: Sequence[str]) -> int:
    """The index of the text in ``texts`` closest to ``plain`` by the embedder (cross-lingual)."""
    vec = encoder.encode([plain], kind="query")[0]
    return int((encoder.encode(list(texts), kind="passage") @ vec).argmax())


def _best_source(
    plain: str, texts: Sequence[str], encoder: Encoder | None, normaliser: Normaliser | None
) -> int | None:
    """The 1-based source that supports ``plain`` best (None when none does with evidence): by
    cross-lingual similarity with the embedder when given, else by shared matching units."""
    candidates = [i for i, t in enumerate(texts, 1) if _evidenced(plain, t, normaliser)]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    if encoder is not None:
        return candidates[most_similar(encoder, plain, [texts[i - 1] for i in candidates])]
    wanted = units(plain, normaliser)
    return max(candidates, key=lambda i: overlap(wanted, units(texts[i - 1], normaliser)))


def restates(plain: str, question: str, normaliser: Normaliser | None = None) -> bool:
    """True when ``plain`` adds nothing to ``question``: every matching unit of the sentence is
    one of the question's (``The chairman of the council is [1].`` for "Who chairs the council?")."""
    have = units(question, normaliser) | question_units(question, normaliser)
    said = question_units(plain, normaliser)
    return bool(said) and said <= have


_EVIDENCE = re.compile(rf" ?「.*?」(?:{MARKER.pattern})+")  # a quoted source sentence may hold 「」 itself
_CJK_CHAR = re.compile(f"[{CJK}]")


def own_words(text: str) -> str:
    """A generated answer without the source sentences quoted after its English sentences."""
    return _EVIDENCE.sub("", text).strip()


def written_in_english(text: str) -> bool:
    """Whether the model's own sentences of ``text`` are English: at least three English words,
    and one for every ten Chinese characters at most (names and titles kept in Chinese, as the
    rules ask, do not make an English sentence Chinese; a Chinese sentence has no English frame)."""
    own = strip_markers(own_words(text))
    words = len(written_words(own))
    cjk = len(_CJK_CHAR.findall(own))
    return words >= 3 and words * 10 >= cjk


def check_sentence(
    sentence: str, texts: Sequence[str], encoder: Encoder | None = None, *, question: str = "",
    normaliser: Normaliser | None = None,
) -> tuple[str | None, str]:
    """One generated sentence against the numbered ``texts``: ``(shown, verdict)``.

    ``verdict`` is ``"kept"`` (it cites a source that supports it, or is too short to check),
    ``"repaired"`` (it had no marker; the marker of the source that supports it is added),
    ``"moved"`` (the source it cites does not support it, another one does, with positive
    evidence: its marker is replaced by that one's) or ``"removed"`` (``shown`` is None): it
    names only sources that do not exist, restates the question, or no source supports it.
    Matching uses ``normaliser``'s form (the question's; OpenCC t2s without one).
    """
    sentence = sentence.strip()
    plain = strip_markers(sentence)
    n = len(texts)
    marked = cited_numbers(sentence)
    cited = [c for c in marked if 1 <= c <= n]
    if marked and not cited:
        return None, "removed"  # it named only sources that do not exist
    if question and restates(plain, question, normaliser):
        return None, "removed"  # no answer in it, only the question again
    if content_chars(plain) < CHECK_MIN_CHARS or any(supports(plain, texts[c - 1], normaliser) for c in cited):
        return sentence, "kept"
    best = _best_source(plain, texts, encoder, normaliser)
    if best is None:
        return None, "removed"
    return _with_marker(plain, best), "moved" if cited else "repaired"


def _with_marker(plain: str, n: int) -> str:
    """``plain`` citing source ``n``: ``… [n].`` in English, ``…。[n]`` in Chinese."""
    if not is_chinese_text(plain) and plain[-1:] in ENGLISH_ENDS:
        return f"{plain[:-1]} [{n}]{plain[-1]}"
    return f"{plain}[{n}]"


def sentence_joiner(before: str) -> str:
    """What goes between a kept sentence and the next: nothing after Chinese, a space after English."""
    return "" if is_chinese_text(strip_markers(before)) else " "

