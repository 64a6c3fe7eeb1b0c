"""The cited answer to a question: abstain below the relevance floor, else a generated answer
when a generator is set (checked, with the extractive one as its fallback), else the
extractive answer; converted to the display script last."""

from __future__ import annotations

import time
from dataclasses import replace

from rag.answer.abstain import abstain, abstain_reason, relevance_floor, relevance_of
from rag.answer.display import in_script
from rag.answer.extractive import extractive_answer
from rag.answer.generated import (
    Generator,
    UnusableGeneration,
    describe_failure,
    generated_answer,
    generator_from_settings,
)
from rag.config import Settings
from rag.question import Question
from rag.text.script import script_config
from rag.types import Answer, Hit

MAX_GEN_PARAGRAPHS = 5  # paragraphs shown to the generator


def answer_from_hits(
    question: Question,
    hits: list[Hit],
    settings: Settings,
    *,
    script: str | None = None,
    generator: Generator | None = None,
) -> Answer:
    """The cited answer to ``question`` from ranked ``hits``.

    Abstains when there is no hit at or above the relevance floor. ``generator`` (default: built
    from ``RAG_LLM_BASE_URL`` when set) writes the answer from the numbered paragraphs; any
    failure falls back to the extractive answer with a warning.
    """
    t0 = time.perf_counter()
    script_config(script)  # a bad script name fails before any work
    answer = _answer_original(question, hits, settings, generator=generator, t0=t0)
    return in_script(answer, script)


def _answer_original(
    question: Question, hits: list[Hit], settings: Settings, *, generator: Generator | None, t0: float,
) -> Answer:
    """The answer in the source's own script (``in_script`` converts it for display)."""
    lang = question.lang
    floor = relevance_floor(settings)
    above = [h for h in hits if relevance_of(h) >= floor]
    if not above:
        return abstain(lang, None, timings={"answer": _ms(t0)}, reason=abstain_reason(hits, floor))
    warnings: list[str] = []
    if generator is None and settings.llm_base_url:
        try:
            generator = generator_from_settings(settings)
        except ValueError as exc:
            warnings.append(f"generator misconfigured: {exc}; showing extractive answer")
    if generator is not None:
        t1 = time.perf_counter()
        try:
            answer = generated_answer(question, above[:MAX_GEN_PARAGRAPHS], generator)
            return replace(answer, timings_ms={"generate": _ms(t1)})
        except UnusableGeneration as exc:
            warnings.extend(exc.warnings)
        except Exception as exc:  # never an error page: any generator failure -> extractive
            warnings.append(describe_failure(exc))
    answer = extractive_answer(question, above, warnings=warnings)
    return replace(answer, timings_ms={"extract": _ms(t0)})


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)
