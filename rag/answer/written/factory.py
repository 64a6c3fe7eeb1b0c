"""The one place the language models are built from settings: the generator that writes answers
(an OpenAI-compatible server, or the local model) and the local model's answerability judge."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

from rag.answer.written.client import Generator, OpenAIChatGenerator
from rag.config import Settings

if TYPE_CHECKING:
    from rag.llm.judge import Judge

_JUDGES: dict[tuple[str, int, int, float, int], Judge] = {}


def writes_locally(settings: Settings) -> bool:
    """Whether the local model writes the answers (``RAG_LLM=local``, ``RAG_LLM_ANSWERS=generated``
    and no ``RAG_LLM_BASE_URL``, which would take precedence)."""
    return settings.llm == "local" and settings.llm_answers == "generated" and not settings.llm_base_url


def writes_by_default(settings: Settings) -> bool:
    """Whether an answer is written when its request does not say (``answer_mode``): a server
    writes (``RAG_LLM_BASE_URL``), or the local model does (:func:`writes_locally`)."""
    return bool(settings.llm_base_url) or writes_locally(settings)


def generator_from_settings(settings: Settings, *, judge: Judge | None = None) -> Generator | None:
    """The default generator: :func:`writer_from_settings`'s when answers are written by default
    (:func:`writes_by_default`), else None."""
    return writer_from_settings(settings, judge=judge) if writes_by_default(settings) else None


def writer_from_settings(settings: Settings, *, judge: Judge | None = None) -> Generator | None:
    """The generator of a written answer, whatever the default mode: the server's of
    ``RAG_LLM_BASE_URL`` when set (raises ``ValueError`` when its settings are invalid); else the
    local model's, given its ``judge``; else None (no model can write)."""
    if settings.llm_base_url:
        return _shared_generator(
            settings.llm_base_url, settings.llm_model, settings.llm_api_key, settings.llm_timeout_s
        )
    if judge is not None:
        from rag.llm.generate import LocalGenerator  # the same loaded model as the judge

        return LocalGenerator(judge.model, timeout_s=settings.llm_timeout_s)
    return None


@lru_cache(maxsize=4)
def _shared_generator(
    base_url: str, model: str, api_key: str | None, timeout_s: float
) -> OpenAIChatGenerator:
    # One client (and its connection pool) per configuration, shared by all requests.
    return OpenAIChatGenerator(base_url, model, api_key=api_key, timeout_s=timeout_s)


def judge_from_settings(settings: Settings, *, cache_mb: int | None = None) -> Judge | None:
    """The judge for ``RAG_LLM=local`` (None when off). Assembles the weights on first use."""
    if settings.llm != "local":
        return None
    # Imported here: the engine and the weights are only needed when the local model is on.
    from rag.llm.engine import get_local_model
    from rag.llm.judge import DEFAULT_FLOOR, Judge
    from rag.llm.weights import resolve_model_path

    path = resolve_model_path(settings.llm_model_path, settings.cache_dir)
    threads = settings.llm_threads or os.cpu_count() or 1
    mb = settings.llm_cache_mb if cache_mb is None else cache_mb
    floor = DEFAULT_FLOOR if settings.judge_floor is None else settings.judge_floor
    key = (str(path), threads, mb, floor, settings.judge_top_k)
    judge = _JUDGES.get(key)
    if judge is None:
        model = get_local_model(path, threads=threads, cache_mb=mb)
        judge = _JUDGES[key] = Judge(model, floor=floor, top_k=settings.judge_top_k)
    return judge
