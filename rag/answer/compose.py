"""The cited answer to a question: abstain below the relevance floor; with the judge
(``RAG_LLM=local``) cite only the paragraphs it passes and abstain when none does; else a
generated answer when a generator is set (checked, with the extractive one as its fallback), else
the extractive answer; converted to the display script last."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from rag.embedding import Encoder
    from rag.llm.judge import Judge

MAX_GEN_PARAGRAPHS = 5  # paragraphs shown to the generator


def answer_from_hits(
    question: Question,
    hits: list[Hit],
    settings: Settings,
    *,
    script: str | None = None,
    generator: Generator | None = None,
    judge: Judge | None = None,
    encoder: Encoder | None = None,
) -> Answer:
    """The cited answer to ``question`` from ranked ``hits``.

    Abstains when there is no hit at or above the relevance floor. ``judge`` (``RAG_LLM=local``)
    reads the top paragraphs against the question: only those it passes are cited, and when none
    passes the answer abstains with its reason. ``generator`` (default: built from
    ``RAG_LLM_BASE_URL`` when set) writes the answer from the numbered paragraphs; any failure
    falls back to the extractive answer with a warning. ``encoder`` (the retrieval embedder) finds
    the paragraph that supports a generated sentence the model left without its marker.
    """
    t0 = time.perf_counter()
    script_config(script)  # a bad script name fails before any work
    answer = _answer_original(question, hits, settings, generator=generator, judge=judge, encoder=encoder, t0=t0)
    return in_script(answer, script)


def _answer_original(
    question: Question, hits: list[Hit], settings: Settings, *, generator: Generator | None,
    judge: Judge | None, encoder: Encoder | None, t0: float,
) -> Answer:
    """The answer in the source's own script (``in_script`` converts it for display)."""
    lang = question.lang
    floor = relevance_floor(settings)
    above = [h for h in hits if relevance_of(h) >= floor]
    if not above:
        return abstain(lang, None, timings={"answer": _ms(t0)}, reason=abstain_reason(hits, floor))
    judged_ms: dict[str, float] = {}
    if judge is not None:
        from rag.llm.judge import reason as judge_reason

        t1 = time.perf_counter()
        read = above[: judge.top_k]
        verdicts = judge.judge(question.text, read)
        judged_ms = {"judge": _ms(t1)}
        above = [replace(h, judge=round(v.p_yes, 4)) for h, v in zip(read, verdicts, strict=True)
                 if v.p_yes >= judge.floor]
        if not above:
            best = max(v.p_yes for v in verdicts)
            return abstain(lang, None, timings={**judged_ms, "answer": _ms(t0)},
                           reason=judge_reason(lang, len(read), best, judge.floor))
    answer = _answer_passed(question, above, settings, generator=generator, encoder=encoder, t0=t0)
    return replace(answer, timings_ms={**judged_ms, **answer.timings_ms})


def _answer_passed(
    question: Question, above: list[Hit], settings: Settings, *, generator: Generator | None,
    encoder: Encoder | None, t0: float,
) -> Answer:
    """The answer from the paragraphs that passed the relevance floor (and the judge)."""
    warnings: list[str] = []
    if generator is None and settings.llm_base_url:
        try:
            generator = generator_from_settings(settings)
        except ValueError as exc:
            warnings.append(f"generator misconfigured: {exc}; showing extractive answer")
    if generator is not None:
        t1 = time.perf_counter()
        try:
            answer = generated_answer(question, above[:MAX_GEN_PARAGRAPHS], generator, encoder=encoder)
            return replace(answer, timings_ms={"generate": _ms(t1)})
        except UnusableGeneration as exc:
            warnings.extend(exc.warnings)
        except Exception as exc:  # never an error page: any generator failure -> extractive
            warnings.append(describe_failure(exc))
    answer = extractive_answer(question, above, warnings=warnings)
    return replace(answer, timings_ms={"extract": _ms(t0)})


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)
