"""When nothing is cited: the relevance floor, the abstention message in the question's language,
and the reason given."""

from __future__ import annotations

from collections.abc import Sequence

from rag.config import Settings
from rag.profiles import E5_SMALL, ModelProfile
from rag.text.normalise import convert_script
from rag.types import Answer, Hit, Notice

ABSTAIN_MESSAGES = {
    "zh-Hant": "找不到可靠的來源回答這個問題。",
    "zh-Hans": "找不到可靠的来源回答这个问题。",
    "en": "No source found that answers this question.",
}


def relevance_of(hit: Hit) -> float:
    """The calibrated answer probability when retrieval set it, else the ranking score."""
    return hit.relevance if hit.relevance is not None else hit.score


def relevance_floor(settings: Settings | None, calibration: ModelProfile = E5_SMALL, *, judged: bool = False) -> float:
    """The calibrated relevance (``Hit.relevance``, see rag/retrieval/relevance.py) below which a hit is
    not cited: ``RAG_MIN_SCORE`` when set, else the embedding model's calibrated floor (0 for a
    model without calibration: nothing is screened). With the judge reading the paragraphs
    (``judged``), the model's lower floor: it only screens off-topic questions, and the judge
    decides the rest."""
    if settings is not None and settings.min_score is not None:
        return settings.min_score
    return calibration.judged_floor if judged else calibration.floor


def abstain(
    lang: str,
    config: str | None,
    warnings: Sequence[Notice] = (),
    timings: dict[str, float] | None = None,
    *,
    reason: str,
) -> Answer:
    message = ABSTAIN_MESSAGES[lang]
    if config and lang != "en":
        message = convert_script(message, config)
    return Answer(message, True, (), dict(timings or {}), tuple(warnings), reason)


def abstain_reason(hits: Sequence[Hit], floor: float) -> str:
    """Why nothing is cited: no paragraph retrieved, or the best one below the relevance floor."""
    if not hits:
        return "no paragraph was retrieved for this question"
    best = max(hits, key=relevance_of)
    return (f"no paragraph reached the relevance floor {floor:.2f} (RAG_MIN_SCORE); the best, "
            f"{best.para_id}, scored {relevance_of(best):.2f}")
