"""What was tuned for each embedding model: its relevance model and floor, its fusion weights,
and whether its index embeds sentences too; standard library only.

Every number here was fitted or chosen on the external dev sets for one model's vectors
(``benchmarks/calibrate_abstention.py``, ``tune_fusion.py``, ``tune_gloss.py``;
docs/retrieval.md). Another model's cosines have another scale, so a model with no profile gets
:func:`profile_for`'s uncalibrated one: no relevance floor (and a notice on every answer, see
``rag.answer.compose``), never the numbers of another model. The ``RAG_LEXICAL_WEIGHT``-style
settings override a profile's values when set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ModelProfile:
    """The tuned values of one embedding model.

    ``coef`` (the relevance model's coefficients, ``rag.retrieval.relevance``) is None for a
    model nobody calibrated: its hits carry no relevance and nothing is screened unless
    ``RAG_MIN_SCORE`` sets a floor on the ranking score.
    """

    model: str  # the model the numbers were fitted for
    coef: Mapping[str, float] | None
    floor: float  # the relevance floor without the judge (RAG_MIN_SCORE when unset)
    judged_floor: float = 0.0  # the floor in front of the judge: it only screens off-topic questions
    lexical_weight: float = 0.1  # BM25 share for Chinese questions
    lexical_weight_latin: float = 0.0  # BM25 share for questions without CJK
    gloss_weight: float = 0.03  # English-gloss BM25 share for English and mixed questions
    translate_queries: bool = True  # CC-CEDICT translations added to English questions
    sentence_vectors: bool = True  # each sentence of a multi-sentence paragraph embedded too

    @property
    def calibrated(self) -> bool:
        return self.coef is not None


# multilingual-e5-small (the default): e5 puts unrelated passages near 0.7-0.8 and related ones
# near 0.85, so "dense" weighs a narrow band. The floors were chosen on the four dev sets indexed
# as new corpora (benchmarks/heldout_floor.py, 200 questions a set; docs/retrieval.md#abstention):
# 0.12 is the highest floor whose false abstention stays <= 0.05 in every set and language (English
# questions over Chinese text are the limit: 0.37 of them were refused at the earlier 0.4); with
# the judge, 0.05 refuses 1 of 800 answerable questions and most off-topic Chinese ones, and
# leaves the rest to the judge.
E5_SMALL = ModelProfile(
    "multilingual-e5-small",
    {"bias": -26.249, "dense": 24.75, "coverage": 7.948, "latin": 10.047,
     "dense_latin": -6.058, "coverage_latin": -1.943, "missing_words": 0.058},
    0.12,
    judged_floor=0.05,
)

# EmbeddingGemma-300M: its cosines spread wider (unrelated passages near 0.2-0.4). Chosen on
# xquad/en-zh-dev (benchmarks/tune_gloss.py; docs/retrieval.md#embedding-models): sentence vectors
# on (R@1 0.910 -> 0.961 dense only), no dictionary translation of English questions (0.961 with
# it, 0.962 without: the model needs no Chinese anchors, and the question stays short), the
# gloss at 0.1 (0.962 -> 0.975). The relevance model was fitted by calibrate_abstention.py on
# xquad/en-zh-dev and xquad/zh-dev (positives, near misses) and drcd/cmrc2018 questions asked of
# the xquad corpus (off-topic); its floor 0.2 keeps 95% of the dev positives (false abstention
# <= 0.05 on text it was not tuned for) and rejects 76% of the near misses and off-topic hits.
# In front of the judge, 0.02: no answerable question of the xquad sets indexed as new corpora
# refused, 79-84% of off-topic ones (benchmarks/heldout_floor.py; in-sample for this model).
# The lexical weights, swept in the full hybrid on the dev sets (rag eval, bfloat16 vectors;
# benchmarks/README.md): BM25 at 0.2 for Chinese questions (drcd/dev R@1 0.957 -> 0.965 against
# e5's 0.1, +0.008 [+0.004, +0.012]; cmrc2018/dev and xquad/zh-dev unchanged within +-0.001), and
# none for English ones (0.05 changed xquad/en-zh-dev R@1 by -0.001 [-0.004, +0.000]).
GEMMA_300M = ModelProfile(
    "embeddinggemma-300m",
    {"bias": -7.436, "dense": 12.009, "coverage": 5.787, "latin": 0.413,
     "dense_latin": 4.941, "coverage_latin": -2.11, "missing_words": -0.408},
    0.2,
    judged_floor=0.02,
    lexical_weight=0.2,
    gloss_weight=0.1,
    translate_queries=False,
)

# (substring of the lower-cased model id or name, profile): the packaged copy, its hub name and
# a folder named after it share one entry (the same weights).
PROFILES: tuple[tuple[str, ModelProfile], ...] = (
    ("multilingual-e5-small", E5_SMALL),
    ("embeddinggemma-300m", GEMMA_300M),
)


def profile_for(model: str) -> ModelProfile:
    """The profile of ``model`` (a manifest's model id, or a RAG_EMBED_MODEL value), or an
    uncalibrated one with the default fusion weights."""
    low = model.lower()
    for key, profile in PROFILES:
        if key in low:
            return profile
    return ModelProfile(model, None, 0.0)


# The settings (RAG_<NAME>) that replace a profile's value when they are set.
OVERRIDABLE = ("lexical_weight", "lexical_weight_latin", "gloss_weight", "translate_queries", "sentence_vectors")


def effective(profile: ModelProfile, settings: Any) -> ModelProfile:
    """``profile`` with the values the ``settings`` set explicitly (not None) in place of its own."""
    updates = {name: value for name in OVERRIDABLE if (value := getattr(settings, name, None)) is not None}
    return replace(profile, **updates) if updates else profile


def profile_of_settings(settings: Any) -> ModelProfile:
    """The profile of the model ``settings`` name (before it is loaded), with their overrides:
    what `rag index` builds with (sentence vectors) and a service retrieves with."""
    from rag.modelid import packaged_model_id

    name = str(settings.embed_model)
    return effective(profile_for(packaged_model_id(name) or name), settings)


def uncalibrated_text(model: str) -> str:
    return (f"the embedding model {model} has no relevance calibration, so answers are not screened "
            "for relevance: set RAG_MIN_SCORE (a floor on the ranking score) or fit one with "
            "benchmarks/calibrate_abstention.py")


UNCALIBRATED_NOTICE = "uncalibrated-relevance"
