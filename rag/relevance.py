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
(positive: the gold paragraph; negative: the best-ranked paragraph that is not gold, i.e. a
same-topic near miss) and checked on the gold set's unanswerable questions.
"""

from __future__ import annotations

import math

from rag.normalise import cjk_ratio
from rag.sentences import question_units, units

# Fitted by benchmarks/calibrate_abstention.py (see its output in the README "Abstention").
COEF = {"bias": -33.0, "dense": 38.0, "coverage": 6.0, "latin": 0.0, "dense_latin": 0.0, "coverage_latin": -6.0}
DEFAULT_FLOOR = 0.5


def features(question: str, paragraph: str, dense: float) -> dict[str, float]:
    wanted = question_units(question)
    have = units(paragraph)
    coverage = sum(1 for u in wanted if u in have) / len(wanted) if wanted else 0.0
    latin = 1.0 if cjk_ratio(question) < 0.2 else 0.0
    return {
        "dense": dense,
        "coverage": coverage,
        "latin": latin,
        "dense_latin": dense * latin,
        "coverage_latin": coverage * latin,
    }


def probability(feats: dict[str, float], coef: dict[str, float] | None = None) -> float:
    coef = coef or COEF
    z = coef["bias"] + sum(coef[name] * value for name, value in feats.items())
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def relevance(question: str, paragraph: str, dense: float | None) -> float:
    """Probability that ``paragraph`` answers ``question`` (0..1)."""
    return probability(features(question, paragraph, dense or 0.0))
