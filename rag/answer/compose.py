"""The cited answer to a question: abstain below the relevance floor; with the judge
(``RAG_LLM=local``) cite only the paragraphs it passes and abstain when none does; else a
generated answer when a generator is set (checked sentence by sentence as it streams, with the
extractive one shown first and kept as its fallback), else the extractive answer; converted to
the display script last."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, TypedDict, Unpack

from rag.answer.abstain import abstain, abstain_reason, relevance_floor, relevance_of
from rag.answer.display import in_script
from rag.answer.extractive import extractive_answer
from rag.answer.steps import Draft, Final, Pending, Piece, Step, final_answer
from rag.answer.written.client import Generator, describe_failure
from rag.answer.written.factory import writer_from_settings
from rag.answer.written.framed import FramedWriter, frames_english
from rag.answer.written.markers import cited_numbers
from rag.answer.written.prompt import answer_messages
from rag.answer.written.stream import CheckedStream, UnusableGeneration
from rag.config import Settings
from rag.errors import ModelError
from rag.profiles import E5_SMALL, UNCALIBRATED_NOTICE, ModelProfile, uncalibrated_text
from rag.question import Question
from rag.text.normalise import convert_script
from rag.text.script import script_config
from rag.types import (
    FALLBACK_MISCONFIGURED,
    FALLBACK_NO_WRITER,
    GENERATOR_INCOMPLETE,
    JUDGE_UNAVAILABLE,
    Answer,
    Hit,
    Notice,
)

if TYPE_CHECKING:
    from rag.answer.lexicon import Lexicon
    from rag.embedding import Encoder
    from rag.llm.judge import AnswerJudge

MAX_GEN_PARAGRAPHS = 5  # paragraphs shown to the generator
NO_WRITER = ("a written answer was asked for, but no language model writes answers on this server "
             "(RAG_LLM=local or RAG_LLM_BASE_URL); showing extractive answer")


class AnswerOptions(TypedDict, total=False):
    """How to answer: the display script, the generator that writes, the request's answer mode,
    the judge, the encoder, the lexicon that glosses Chinese spans in English answers, and whether
    English answers over Chinese paragraphs are extracted then framed (default) or written freely."""

    script: str | None
    generator: Generator | None
    mode: str | None
    judge: AnswerJudge | None
    encoder: Encoder | None
    lexicon: Lexicon | None
    english_frame: bool
    calibration: ModelProfile | None


def answer_from_hits(question: Question, hits: list[Hit], settings: Settings,
                     **options: Unpack[AnswerOptions]) -> Answer:
    """The cited answer to ``question`` from ranked ``hits`` (the last step of :func:`answer_steps`)."""
    return final_answer(answer_steps(question, hits, settings, **options))


def answer_steps(
    question: Question,
    hits: list[Hit],
    settings: Settings,
    *,
    script: str | None = None,
    generator: Generator | None = None,
    judge: AnswerJudge | None = None,
    encoder: Encoder | None = None,
    mode: str | None = None,
    lexicon: Lexicon | None = None,
    english_frame: bool = True,
    calibration: ModelProfile | None = None,
) -> Iterator[Step]:
    """The cited answer to ``question`` from ranked ``hits``, step by step.

    Abstains when there is no hit at or above the relevance floor. ``judge`` (``RAG_LLM=local``)
    reads the top paragraphs against the question: only those it passes are cited, and when none
    passes the answer abstains with its reason. ``generator`` (default: built from
    ``RAG_LLM_BASE_URL`` when set) writes the answer from the numbered paragraphs; then the
    steps are :class:`Draft` (the extractive answer, shown while the model writes),
    :class:`Piece` for each checked sentence as it is written (:class:`CheckedStream`), with
    :class:`Pending` after every token (the sentence being written, not yet checked: the chat
    shows it greyed), and :class:`Final`; any failure before a cited sentence falls back to the extractive
    answer with a warning. Without a generator the one step is :class:`Final`.
    ``encoder`` (the retrieval embedder) finds the paragraph and the sentence that support a
    generated sentence. ``mode`` is the request's choice: ``"extractive"`` leaves the generator
    out; ``"written"`` without a generator (none given, no ``RAG_LLM_BASE_URL``) gives the
    extractive answer with a notice; None writes when there is a generator. With
    ``english_frame``, an English question over Chinese paragraphs is answered by extracting the
    answer span, then framing it in one English sentence
    (:class:`~rag.answer.written.framed.FramedWriter`; ``lexicon`` glosses the span).
    ``calibration`` is the embedding model's relevance model (default: the default model's); a
    model without one screens nothing and every answer says so. Every answer is converted to the
    display ``script`` last.
    """
    t0 = time.perf_counter()
    config = script_config(script)  # a bad script name fails before any work
    lang = question.lang
    calibration = calibration or E5_SMALL
    floor = relevance_floor(settings, calibration, judged=judge is not None)
    above = [h for h in hits if relevance_of(h) >= floor]
    warnings: list[Notice] = []
    if not calibration.calibrated:
        warnings.append(Notice(UNCALIBRATED_NOTICE, uncalibrated_text(calibration.model)))
    if not above:
        yield Final(in_script(abstain(lang, None, warnings, timings={"answer": _ms(t0)},
                                      reason=abstain_reason(hits, floor)), script))
        return
    judged_ms: dict[str, float] = {}
    unjudged: Notice | None = None
    if judge is not None:
        from rag.llm.judge import reason as judge_reason

        t1 = time.perf_counter()
        read = above[: judge.top_k]
        try:
            verdicts = judge.judge(question.standalone, read)
        except ModelError as exc:  # a model server that fails now: cite as without the judge, and say so
            verdicts = None
            unjudged = Notice(JUDGE_UNAVAILABLE, f"the language model's check is unavailable ({exc}); "
                                                 "the paragraphs are cited without it")
        judged_ms = {"judge": _ms(t1)}
        if verdicts is not None:
            above = [replace(h, judge=round(v.p_yes, 4)) for h, v in zip(read, verdicts, strict=True)
                     if v.p_yes >= judge.floor]
        if verdicts is not None and not above:
            best = max(v.p_yes for v in verdicts)
            yield Final(in_script(abstain(lang, None, warnings, timings={**judged_ms, "answer": _ms(t0)},
                                          reason=judge_reason(lang, len(read), best, judge.floor)), script))
            return
    if unjudged is not None:
        warnings.append(unjudged)
    if mode == "extractive":
        generator = None
    elif generator is None and settings.llm_base_url:
        try:
            generator = writer_from_settings(settings)
        except ValueError as exc:
            warnings.append(Notice(FALLBACK_MISCONFIGURED, f"generator misconfigured: {exc}; showing extractive answer"))
    elif generator is None and mode == "written":
        warnings.append(Notice(FALLBACK_NO_WRITER, NO_WRITER))
    extractive = extractive_answer(question, above, warnings=warnings)
    if generator is None:
        yield Final(in_script(replace(extractive, timings_ms={**judged_ms, "extract": _ms(t0)}), script))
        return
    yield Draft(in_script(replace(extractive, timings_ms={**judged_ms, "extract": _ms(t0)}), script))
    if english_frame and frames_english(question, above[:MAX_GEN_PARAGRAPHS]):
        yield from _framed_steps(question, above, generator, extractive, lexicon=lexicon, encoder=encoder,
                                 script=script, config=config, judged_ms=judged_ms, t0=t0)
        return
    yield from _written_steps(question, above, generator, extractive, encoder=encoder, script=script,
                              config=config, judged_ms=judged_ms, t0=t0)


def _framed_steps(
    question: Question, above: list[Hit], generator: Generator, extractive: Answer, *, lexicon: Lexicon | None,
    encoder: Encoder | None, script: str | None, config: str | None, judged_ms: dict[str, float], t0: float,
) -> Iterator[Step]:
    """The steps of an English answer over Chinese paragraphs, extracted then framed: a
    :class:`Pending` after every token of the frame, one :class:`Piece` (the checked sentence
    and its quoted source sentence), then :class:`Final` (the ``extractive`` answer with the
    reason when no span was found or nothing cited is left)."""
    t1 = time.perf_counter()
    writer = FramedWriter(question, above[:MAX_GEN_PARAGRAPHS], generator, lexicon=lexicon, encoder=encoder,
                          config=config)
    timings: dict[str, float] = {}
    steps = writer.steps()
    answer: Answer | None = None
    try:
        while True:
            step = next(steps)
            if isinstance(step, Piece):
                timings.setdefault("first_shown", _ms(t0))
            yield step
    except StopIteration as done:
        answer = done.value
    except UnusableGeneration as exc:
        warnings = [*extractive.warnings, *writer.warnings, *exc.warnings]
    except Exception as exc:  # never an error page: a generator failure -> the extractive answer
        warnings = [*extractive.warnings, *writer.warnings, describe_failure(exc)]
    if writer.first_token is not None:
        timings["first_token"] = round((writer.first_token - t0) * 1000, 2)
    if answer is None:
        answer = replace(extractive, warnings=tuple(warnings))
        yield Final(in_script(replace(answer, timings_ms={**judged_ms, **timings, "extract": _ms(t0)}), script))
        return
    yield Final(replace(answer, warnings=(*extractive.warnings, *answer.warnings),
                        timings_ms={**judged_ms, **timings, "generate": _ms(t1)}))


def _written_steps(
    question: Question, above: list[Hit], generator: Generator, extractive: Answer, *,
    encoder: Encoder | None, script: str | None, config: str | None, judged_ms: dict[str, float], t0: float,
) -> Iterator[Step]:
    """The steps of the answer ``generator`` writes over the paragraphs ``above`` the floor: a
    :class:`Piece` per checked sentence, :class:`Pending` after every token, then :class:`Final`
    (the ``extractive`` answer with the reason when nothing cited came out of it)."""
    t1 = time.perf_counter()
    checked = CheckedStream(question, above[:MAX_GEN_PARAGRAPHS], encoder=encoder, config=config)
    timings: dict[str, float] = {}  # first_shown: a checked sentence reached the reader
    try:
        for piece in generator.stream(answer_messages(question, checked.hits)):
            timings.setdefault("first_token", _ms(t0))
            out = checked.feed(piece)
            if out:
                timings.setdefault("first_shown", _ms(t0))
                yield Piece(out)
            yield Pending(convert_script(checked.pending, config))
        out = checked.close()
        if out:
            timings.setdefault("first_shown", _ms(t0))
            yield Piece(out)
        answer = checked.answer()
    except UnusableGeneration as exc:
        warnings = [*extractive.warnings, *exc.warnings]
        answer = None
    except Exception as exc:  # never an error page: a generator failure -> extractive (or what was checked)
        if "first_shown" in timings and cited_numbers(checked.clean):
            answer = checked.answer()
            answer = replace(answer, warnings=(*answer.warnings,
                                               describe_failure(exc, then="the answer may be incomplete",
                                                                code=GENERATOR_INCOMPLETE)))
        else:
            warnings = [*extractive.warnings, describe_failure(exc)]
            answer = None
    if answer is None:
        answer = replace(extractive, warnings=tuple(warnings))
        yield Final(in_script(replace(answer, timings_ms={**judged_ms, **timings, "extract": _ms(t0)}), script))
        return
    answer = replace(answer, warnings=(*extractive.warnings, *answer.warnings),
                     timings_ms={**judged_ms, **timings, "generate": _ms(t1)})
    yield Final(answer)  # CheckedStream converted it to the display script


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)
