"""The one place the language models are built from settings: the generator that writes answers
(an OpenAI-compatible server, or the local model) and the answerability judge (the local model's,
or a model server's)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

from rag.answer.written.client import Generator, OpenAIChatGenerator
from rag.config import Settings

if TYPE_CHECKING:
    from rag.llm.engine import LocalModel
    from rag.llm.judge import AnswerJudge, Judge

_JUDGES: dict[tuple[str, int, int, float, int], Judge] = {}


def writes_locally(settings: Settings) -> bool:
    """Whether the local model writes the answers (``RAG_LLM=local``, ``RAG_LLM_ANSWERS=generated``
    and no ``RAG_LLM_BASE_URL``, which would take precedence)."""
    return settings.llm == "local" and settings.llm_answers == "generated" and not settings.llm_base_url


def writes_by_default(settings: Settings) -> bool:
    """Whether an answer is written when its request does not say (``answer_mode``): a server
    writes (``RAG_LLM_BASE_URL``), or the local model does (:func:`writes_locally`)."""
    return bool(settings.llm_base_url) or writes_locally(settings)


def generator_from_settings(settings: Settings, *, judge: AnswerJudge | None = None) -> Generator | None:
    """The default generator: :func:`writer_from_settings`'s when answers are written by default
    (:func:`writes_by_default`), else None."""
    return writer_from_settings(settings, judge=judge) if writes_by_default(settings) else None


def writer_from_settings(settings: Settings, *, judge: AnswerJudge | None = None) -> Generator | None:
    """The generator of a written answer, whatever the default mode: the server's of
    ``RAG_LLM_BASE_URL`` when set (raises ``ValueError`` when its settings are invalid); else the
    local model's, given its local ``judge``; else None (no model can write)."""
    if settings.llm_base_url:
        return _shared_generator(
            settings.llm_base_url, settings.llm_model, settings.llm_api_key, settings.llm_timeout_s
        )
    model = local_model_of(judge)
    if model is not None:
        from rag.llm.generate import LocalGenerator  # the same loaded model as the judge

        return LocalGenerator(model, timeout_s=settings.llm_timeout_s)
    return None


def local_model_of(judge: AnswerJudge | None) -> LocalModel | None:
    """The model this process loaded for ``judge``; None for a server's judge or none."""
    if judge is None or judge.kind != "local":
        return None
    model: LocalModel | None = getattr(judge, "model", None)  # rag.llm.judge.Judge's, or a stand-in's
    return model


@lru_cache(maxsize=4)
def _shared_generator(
    base_url: str, model: str, api_key: str | None, timeout_s: float
) -> OpenAIChatGenerator:
    # One client (and its connection pool) per configuration, shared by all requests.
    return OpenAIChatGenerator(base_url, model, api_key=api_key, timeout_s=timeout_s)


def judge_placement(settings: Settings) -> str:
    """Where the judge runs: ``"local"`` (the model in this process), ``"server"`` (the logprobs of
    ``RAG_LLM_BASE_URL``'s server) or ``"off"``. Only ``RAG_LLM=local`` has a judge;
    ``RAG_LLM_JUDGE=auto`` puts it on the server when ``RAG_LLM_BASE_URL`` is set."""
    if settings.llm != "local" or settings.llm_judge == "off":
        return "off"
    if settings.llm_judge == "auto":
        return "server" if settings.llm_base_url else "local"
    return settings.llm_judge


def judge_from_settings(settings: Settings, *, cache_mb: int | None = None) -> AnswerJudge | None:
    """The judge of :func:`judge_placement` (None when off). The local one assembles the weights
    and loads the model on first use; the server's is checked once (it must return logprobs).
    Raises ``ModelError`` (or ``ValueError`` for bad settings) when it cannot be had."""
    placement = judge_placement(settings)
    if placement == "off":
        return None
    from rag.llm.judge import DEFAULT_FLOOR

    floor = DEFAULT_FLOOR if settings.judge_floor is None else settings.judge_floor
    if placement == "server":
        return _server_judge(settings, floor)
    # Imported here: the engine and the weights are only needed when the local model is on.
    from rag.llm.engine import get_local_model
    from rag.llm.judge import Judge
    from rag.llm.weights import resolve_model_path

    path = resolve_model_path(settings.llm_model_path, settings.cache_dir)
    threads = settings.llm_threads or os.cpu_count() or 1
    mb = settings.llm_cache_mb if cache_mb is None else cache_mb
    key = (str(path), threads, mb, floor, settings.judge_top_k)
    judge = _JUDGES.get(key)
    if judge is None:
        model = get_local_model(path, threads=threads, cache_mb=mb)
        judge = _JUDGES[key] = Judge(model, floor=floor, top_k=settings.judge_top_k)
    return judge


def _server_judge(settings: Settings, floor: float) -> AnswerJudge:
    from rag.errors import ModelError
    from rag.llm.server_judge import ServerJudge

    if not settings.llm_base_url:
        raise ModelError("RAG_LLM_JUDGE=server needs RAG_LLM_BASE_URL (the model server's /v1 address)")
    judge = ServerJudge(settings.llm_base_url, settings.llm_model, api_key=settings.llm_api_key,
                        timeout_s=settings.llm_timeout_s, floor=floor, top_k=settings.judge_top_k)
    judge.check()  # once, at start-up: a server without logprobs is refused here, not per question
    return judge
