"""The local model and its judge, built from settings (one of each per process)."""

from __future__ import annotations

import os

from rag.config import Settings
from rag.llm.engine import get_local_model
from rag.llm.judge import DEFAULT_FLOOR, Judge
from rag.llm.weights import resolve_model_path

_JUDGES: dict[tuple, Judge] = {}


def judge_from_settings(settings: Settings, *, cache_mb: int | None = None) -> Judge | None:
    """The judge for ``RAG_LLM=local`` (None when off). Assembles the weights on first use."""
    if settings.llm != "local":
        return None
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
