"""Is a retrieved paragraph an answer at all? A calibrated probability used to abstain.

The ranking score orders paragraphs within one question; it is not comparable across
questions (BM25 is divided by the question's best match). Abstention needs an absolute
signal, so each hit also gets ``relevance``: a logistic model over

* ``dense``: the cosine of the best chunk (absolute for e5: related text ~0.85, unrelated ~0.75),
* ``coverage``: the share of the question's content units (CJK bigrams, English stems,
  numbers, after NFKC + one script) found in the paragraph — an unanswerable question on the
  same topic usually names something the paragraph does not contain,
* whether the question is written without CJK (then coverage says little: the model leans on
  the cosine alone).

The coefficients are fitted by ``benchmarks/calibrate_abstention.py`` on the external dev sets
(positive: the gold paragraph; negatives: the best-ranked paragraph that is not gold, a
same-topic near miss, and the best hit of a question asked against another set's corpus, an
off-topic question) and checked on the gold set's unanswerable questions.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import TYPE_CHECKING

from rag.text.normalise import _jieba
from rag.text.sentences import EN_STOPWORDS, matching_form, units

if TYPE_CHECKING:
    from rag.question import Question

_QWORDS = frozenset(
    "什么 甚么 哪里 哪裡 哪些 哪个 哪一 多少 几多 如何 怎样 怎么 为何 为什么 是否 是不是 谁 何时 何地 "
    "什麼 甚麼 哪個 幾多 怎樣 怎麼 為何 為什麼 誰 何時".split()
)
_WORDY = re.compile(r"^([\u3400-\u9fff]{2,}|[a-z][a-z0-9-]+|\d[\d.,]*)$")

# Fitted by benchmarks/calibrate_abstention.py (see its output in the README "Abstention").
COEF = {
    "bias": -26.249, "dense": 24.75, "coverage": 7.948, "latin": 10.047,
    "dense_latin": -6.058, "coverage_latin": -1.943, "missing_words": 0.058,
}
DEFAULT_FLOOR = 0.4  # best balanced accuracy on the dev sets (benchmarks/calibrate_abstention.py)


@lru_cache(maxsize=4096)
def content_words(question: str) -> tuple[str, ...]:
    """The question's content words (jieba, one script), without question and function words."""
    words = _jieba().lcut(matching_form(question))
    return tuple(
        w for w in dict.fromkeys(words) if _WORDY.match(w) and w not in _QWORDS and w not in EN_STOPWORDS
    )


# A hit's paragraph is compared in its matching form for every question that finds it: cache it.
_paragraph_form = lru_cache(maxsize=4096)(matching_form)


def features(question: Question, paragraph: str, dense: float) -> dict[str, float]:
    """The model's inputs for one (question, paragraph); the question's side is its retrieval text."""
    wanted = question.search_units
    have = units(paragraph)
    coverage = sum(1 for u in wanted if u in have) / len(wanted) if wanted else 0.0
    latin = 1.0 if question.cjk < 0.2 else 0.0
    words = question.content_words
    form = _paragraph_form(paragraph)
    missing = sum(1 for w in words if w not in form) if words else 0
    return {
        "dense": dense,
        "coverage": coverage,
        "latin": latin,
        "dense_latin": dense * latin,
        "coverage_latin": coverage * latin,
        "missing_words": float(min(missing, 3)) * (1.0 - latin),
    }


def probability(feats: dict[str, float], coef: dict[str, float] | None = None) -> float:
    coef = coef or COEF
    z = coef["bias"] + sum(coef[name] * value for name, value in feats.items())
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def relevance(question: Question, paragraph: str, dense: float | None) -> float:
    """Probability that ``paragraph`` answers ``question`` (0..1)."""
    return probability(features(question, paragraph, dense or 0.0))
