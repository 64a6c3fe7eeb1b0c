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
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from rag.profiles import E5_SMALL, ModelProfile
from rag.text.language import LATIN_QUESTION_MAX_CJK
from rag.text.normalise import Normaliser
from rag.text.sentences import matching_form, units

if TYPE_CHECKING:
    from rag.question import Question

# The coefficients and floor of each embedding model are in rag/profiles.py (E5_SMALL for the
# default model): the relevance model is a property of the model whose cosines it reads.


# A hit's paragraph is compared in its matching form for every question that finds it: cache it.
@lru_cache(maxsize=4096)
def _paragraph_form(paragraph: str, normaliser: Normaliser) -> str:
    return matching_form(paragraph, normaliser)


def features(question: Question, paragraph: str, dense: float) -> dict[str, float]:
    """The model's inputs for one (question, paragraph); the question's side is its retrieval text."""
    wanted = question.search_units
    have = units(paragraph, question.normaliser)
    coverage = sum(1 for u in wanted if u in have) / len(wanted) if wanted else 0.0
    latin = 1.0 if question.cjk < LATIN_QUESTION_MAX_CJK else 0.0
    words = question.content_words
    form = _paragraph_form(paragraph, question.normaliser)
    missing = sum(1 for w in words if w not in form) if words else 0
    return {
        "dense": dense,
        "coverage": coverage,
        "latin": latin,
        "dense_latin": dense * latin,
        "coverage_latin": coverage * latin,
        "missing_words": float(min(missing, 3)) * (1.0 - latin),
    }


def probability(feats: dict[str, float], coef: Mapping[str, float] | None = None) -> float:
    coef = E5_SMALL.coef if coef is None else coef
    assert coef is not None
    z = coef["bias"] + sum(coef[name] * value for name, value in feats.items())
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def relevance(question: Question, paragraph: str, dense: float | None,
              calibration: ModelProfile = E5_SMALL) -> float | None:
    """Probability that ``paragraph`` answers ``question`` (0..1); None for an uncalibrated model."""
    if calibration.coef is None:
        return None
    return probability(features(question, paragraph, dense or 0.0), calibration.coef)
