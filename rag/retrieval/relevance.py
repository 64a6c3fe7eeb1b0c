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
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from rag.text.language import LATIN_QUESTION_MAX_CJK
from rag.text.normalise import Normaliser
from rag.text.sentences import matching_form, units

if TYPE_CHECKING:
    from rag.question import Question

# Fitted by benchmarks/calibrate_abstention.py (its output: docs/retrieval.md#abstention) on the
# cosines of the default embedder, multilingual-e5-small: "dense" and "dense_latin" weigh e5's
# cosine scale (e5 puts unrelated passages near 0.7-0.8). Another embedding model has another
# scale: each supported model has its own coefficients and floor (CALIBRATIONS below).
COEF = {
    "bias": -26.249, "dense": 24.75, "coverage": 7.948, "latin": 10.047,
    "dense_latin": -6.058, "coverage_latin": -1.943, "missing_words": 0.058,
}
DEFAULT_FLOOR = 0.4  # best balanced accuracy on the dev sets (benchmarks/calibrate_abstention.py)


@dataclass(frozen=True)
class Calibration:
    """The relevance model of one embedding model: its coefficients and its abstention floor.

    ``coef`` is None for a model nobody calibrated: then hits carry no relevance, nothing is
    screened unless ``RAG_MIN_SCORE`` sets a floor on the ranking score, and every answer says so
    (:data:`UNCALIBRATED_NOTICE`). Another model's numbers would be silently wrong.
    """

    model: str  # the model the numbers were fitted for
    coef: Mapping[str, float] | None
    floor: float

    @property
    def calibrated(self) -> bool:
        return self.coef is not None


E5_SMALL = Calibration("multilingual-e5-small", COEF, DEFAULT_FLOOR)
# Fitted by benchmarks/calibrate_abstention.py on the same dev sets with EmbeddingGemma-300M's
# cosines (its scale is wider: unrelated passages near 0.2-0.4, docs/retrieval.md#abstention).
GEMMA_300M = Calibration("embeddinggemma-300m", {
    "bias": -9.0, "dense": 14.0, "coverage": 6.0, "latin": 3.0,
    "dense_latin": 0.0, "coverage_latin": -2.0, "missing_words": 0.0,
}, 0.4)

# (substring of the lower-cased model id, calibration): the packaged model and its hub name share
# one entry (the same weights).
CALIBRATIONS: tuple[tuple[str, Calibration], ...] = (
    ("multilingual-e5-small", E5_SMALL),
    ("embeddinggemma-300m", GEMMA_300M),
)
UNCALIBRATED_NOTICE = "uncalibrated-relevance"


def calibration_for(model_id: str) -> Calibration:
    """The calibration of the model ``model_id`` (the index manifest's), or an uncalibrated one."""
    low = model_id.lower()
    for key, calibration in CALIBRATIONS:
        if key in low:
            return calibration
    return Calibration(model_id, None, 0.0)


def uncalibrated_text(model: str) -> str:
    return (f"the embedding model {model} has no relevance calibration, so answers are not screened "
            "for relevance: set RAG_MIN_SCORE (a floor on the ranking score) or fit one with "
            "benchmarks/calibrate_abstention.py")


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
    coef = COEF if coef is None else coef
    z = coef["bias"] + sum(coef[name] * value for name, value in feats.items())
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def relevance(question: Question, paragraph: str, dense: float | None,
              calibration: Calibration = E5_SMALL) -> float | None:
    """Probability that ``paragraph`` answers ``question`` (0..1); None for an uncalibrated model."""
    if calibration.coef is None:
        return None
    return probability(features(question, paragraph, dense or 0.0), calibration.coef)
