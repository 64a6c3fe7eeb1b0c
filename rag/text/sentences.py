"""Sentence spans of Chinese and English text, and the matching units used to compare sentences.

Spans are ``[start, end)`` offsets into the text as given, so they can be shown as highlights.
Units (CJK character bigrams, English words, numbers) are computed on the matching form of the
text (NFKC, case-folded, OpenCC ``t2s``), so Traditional and Simplified text compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from rag.text.normalise import Normaliser, _stem

# A sentence ends at Chinese/English end punctuation (plus closing quotes and any citation
# markers right after it), at a newline, or at an English full stop followed by a space.
_END = re.compile(
    r"[。！？!?；;]+[」』”’）)】〉》\"']*(?:[ \t]*\[\d+\])*"
    r"|(?<=[a-z0-9)\]\"'”’])\.[\"'”’)]*(?:[ \t]*\[\d+\])*(?=\s|$)"
    r"|\n"
)
_ABBREV = frozenset("mr mrs ms dr prof st no vs etc inc ltd co jr sr e.g i.e".split())
_WORD_BEFORE = re.compile(r"([A-Za-z.]+)\.?$")

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_LATIN = re.compile(r"[a-z0-9]+(?:[.'\-][a-z0-9]+)*")
_NUMBER = re.compile(r"\d[\d,.]*")
_CONTENT = re.compile(r"[\w\u3400-\u9fff]")

# Function words that carry no topic; a bigram made of one of these is too common to count.
EN_STOPWORDS = frozenset(
    """a an the of to in on at by for with from as and or but not no is are was were be been being
    do does did has have had what which who whom whose when where why how that this these those it its
    they them their there here about into than then so such can could would should will shall may might
    must i you he she we our your his her my me us any some all much many more most other also just
    only very per if tell say said according""".split()
)
_ZH_STOP_CHARS = frozenset("的了是在和与及也都就而或被把之吗呢吧啊么")
# Question words stripped from a question before its units are taken (matching form, t2s).
_ZH_QUESTION_WORDS = re.compile(
    r"为什么|为何|什么|甚么|哪些|哪个|哪一|哪里|哪儿|如何|怎样|怎么|是否|多少|几多|请问|有何|何时|何地|何人|谁|吗|呢"
)

_MATCHING = Normaliser("t2s")


def split_sentences(text: str, *, min_chars: int = 1) -> list[tuple[int, int]]:
    """``[start, end)`` spans of the sentences of ``text``, whitespace trimmed, in order.

    ``min_chars`` drops spans with fewer letters/digits/ideographs than that (headings, stray
    punctuation); their text stays in the paragraph, it just is not a candidate sentence.
    """
    cuts = [0]
    for m in _END.finditer(text):
        if m.group().startswith("."):
            before = _WORD_BEFORE.search(text[: m.start()])
            if before and before.group(1).lower().rstrip(".") in _ABBREV:
                continue
        cuts.append(m.end())
    cuts.append(len(text))
    spans = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a and len(_CONTENT.findall(text[a:b])) >= min_chars:
            spans.append((a, b))
    return spans


def matching_form(text: str) -> str:
    """NFKC + case folding + Traditional->Simplified: the form every comparison uses."""
    return _MATCHING.normalise(text)


@lru_cache(maxsize=4096)
def units(text: str) -> frozenset[str]:
    """Matching units of ``text``: CJK bigrams (a lone character as itself), English word stems, numbers."""
    return _units_of(matching_form(text), question=False)


@lru_cache(maxsize=4096)
def question_units(question: str) -> frozenset[str]:
    """Units of a question without its question words and English function words."""
    form = _ZH_QUESTION_WORDS.sub(" ", matching_form(question))
    return _units_of(form, question=True)


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
        out.add(_stem(word))
    return frozenset(out)


def numbers(text: str) -> frozenset[str]:
    """Digit strings of ``text`` with separators removed (``1,000`` -> ``1000``; ``1.5`` -> ``15``)."""
    return frozenset(re.sub(r"[,.]", "", n).rstrip() for n in _NUMBER.findall(matching_form(text)))


def content_chars(text: str) -> int:
    """Letters, digits and ideographs in ``text``."""
    return len(_CONTENT.findall(text))


def overlap(wanted: Iterable[str], have: frozenset[str]) -> float:
    """Share of ``wanted`` units found in ``have`` (0.0 when nothing is wanted)."""
    wanted = list(wanted)
    if not wanted:
        return 0.0
    return sum(1 for u in wanted if u in have) / len(wanted)
