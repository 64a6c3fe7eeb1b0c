"""Language and script: a question's language, how Chinese a text is, and the question words.

Every "is this text Chinese?" threshold and every question-word list lives here, so a reader
sees them side by side. They differ on purpose; each says where it is used and why.
"""

from __future__ import annotations

import re

from rag.text.normalise import cjk_ratio, convert_script

LANGS = ("zh-Hant", "zh-Hans", "en")

# ---------------------------------------------------------------------------------------------
# Thresholds on ``cjk_ratio`` (share of CJK characters among letters and ideographs).

# A question below this CJK share is a Latin-script question (rag/retrieval/hybrid.py: no
# Chinese BM25 weight, query translation; rag/retrieval/relevance.py: the "latin" feature).
# Low on purpose: "What is 新質生產力?" is still an English question for retrieval.
LATIN_QUESTION_MAX_CJK = 0.2
# Up to this CJK share an English question also uses the English gloss channel
# (rag/retrieval/hybrid.py); measured with benchmarks/tune_gloss.py (docs/retrieval.md).
GLOSS_MAX_CJK = 0.6
# A text at or above this CJK share is written in Chinese (answers and quoted sentences:
# rag/answer/extractive.py, rag/answer/written/, rag/llm/rewrite.py; see is_chinese_text): a
# majority rule, as those callers compare two texts' languages.
CHINESE_TEXT_MIN_CJK = 0.5
# detect_lang: English when Latin words are at least this share of the words, a CJK character
# counting as half a word (so "What is 新質生產力?" is English: the answer's language).
ENGLISH_MIN_LATIN_WORDS = 0.4

# ---------------------------------------------------------------------------------------------
# Question words. Five lists for five jobs; their contents are as measured with each job.

# Stripped from a question before its matching units are taken (rag/text/sentences.py);
# matched on the matching form (Simplified).
ZH_QUESTION_WORDS_UNITS = re.compile(
    r"为什么|为何|什么|甚么|哪些|哪个|哪一|哪里|哪儿|如何|怎样|怎么|是否|多少|几多|请问|有何|何时|何地|何人|谁|吗|呢"
)
# Not content words of a question (rag/retrieval/relevance.py, the "missing words" feature);
# jieba words of the matching form, both scripts listed.
ZH_QUESTION_WORDS = frozenset(
    "什么 甚么 哪里 哪裡 哪些 哪个 哪一 多少 几多 如何 怎样 怎么 为何 为什么 是否 是不是 谁 何时 何地 "
    "什麼 甚麼 哪個 幾多 怎樣 怎麼 為何 為什麼 誰 何時".split()
)
# A question word makes 呢 a softener of a complete question, not an ellipsis
# (rag/question.py, follow-up detection); on the text as asked, both scripts.
ZH_WH = re.compile(r"什麼|甚麼|什么|甚么|誰|谁|哪|如何|怎|為何|为何|多少|幾|几|何時|何时|是否|有沒有|有没有")
# Characters that point back into the conversation ("他認為…", "這個中心"): rag/question.py's
# follow-up detection, and rag/llm/rewrite.py, which does not count the words holding them as
# the question's own.
ZH_POINTING_CHARS = "它他她其這这那該该此"
# English question words dropped from the gloss channel's question terms (rag/index/gloss.py).
EN_QUESTION_WORDS_GLOSS = frozenset(
    "what which who whom whose when where why how many much does did do is are was were will would can could "
    "should name named called".split()
)
# ... and from the dictionary query translation (rag/retrieval/crosslingual.py), which also
# drops "according" ("according to the report" translates to noise).
EN_QUESTION_WORDS_TRANSLATE = EN_QUESTION_WORDS_GLOSS | {"according"}

_LATIN_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def is_chinese_text(text: str) -> bool:
    """Whether ``text`` is written in Chinese: at least :data:`CHINESE_TEXT_MIN_CJK` of its letters are CJK."""
    return cjk_ratio(text) >= CHINESE_TEXT_MIN_CJK


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
    if latin / (latin + cjk / 2) >= ENGLISH_MIN_LATIN_WORDS:
        return "en"
    trad = _changed_chars(text, "t2s")
    simp = _changed_chars(text, "s2t")
    return "zh-Hans" if simp > trad else "zh-Hant"


def _changed_chars(text: str, config: str) -> int:
    converted = convert_script(text, config)
    if len(converted) != len(text):
        return sum(1 for c in set(text) if convert_script(c, config) != c)
    return sum(1 for a, b in zip(text, converted, strict=True) if a != b)
