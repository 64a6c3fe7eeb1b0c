"""The language of a question: Traditional or Simplified Chinese, or English."""

from __future__ import annotations

import re

from rag.text.normalise import convert_script

LANGS = ("zh-Hant", "zh-Hans", "en")

_LATIN_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def detect_lang(text: str) -> str:
    """``zh-Hant``, ``zh-Hans`` or ``en`` for a question.

    English when Latin words outweigh the Chinese (a CJK character counts as half a word, so
    "What is 新質生產力?" is English); between the Chinese scripts, the one with more characters
    of its own, Traditional on a tie (the default corpus is from Hong Kong).
    """
    latin = len(_LATIN_WORD.findall(text))
    cjk = len(_CJK_CHAR.findall(text))
    if latin == 0 and cjk == 0:
        return "en"
    if latin / (latin + cjk / 2) >= 0.4:
        return "en"
    trad = _changed_chars(text, "t2s")
    simp = _changed_chars(text, "s2t")
    return "zh-Hans" if simp > trad else "zh-Hant"


def _changed_chars(text: str, config: str) -> int:
    converted = convert_script(text, config)
    if len(converted) != len(text):
        return sum(1 for c in set(text) if convert_script(c, config) != c)
    return sum(1 for a, b in zip(text, converted, strict=True) if a != b)
