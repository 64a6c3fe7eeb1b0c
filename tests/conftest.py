"""Shared fixtures. The real embedding model is loaded once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EXTERNAL = Path(os.environ.get("RAG_EXTERNAL_DIR", SHARED / "data" / "external"))


@pytest.fixture(scope="session", autouse=True)
def _thread_limits():
    """The suite runs questions as `rag serve` and the CLI do: with their thread limits (the
    library leaves threads alone; tests/test_process_state.py checks that in a fresh process)."""
    from rag.threads import limit_process

    limit_process()


@pytest.fixture(scope="session")
def encoder():
    """The default encoder (converted multilingual-e5-small), built into the cache once.

    Its backend follows RAG_EMBED_BACKEND (auto: the lean one).
    """
    from rag.config import get_settings
    from rag.embedding import get_encoder

    return get_encoder(get_settings())


@pytest.fixture(scope="session")
def st_encoder():
    """The default model through sentence-transformers, all in float32 (the parity reference)."""
    from rag.config import get_settings
    from rag.embedding import get_encoder

    return get_encoder(get_settings(), backend="sentence-transformers", query_dtype="float32", passage_dtype="float32")


@pytest.fixture(scope="session")
def corpus_settings(tmp_path_factory):
    """Settings pointing at a session-wide index of the default corpus (real model)."""
    from rag.config import get_settings

    base = get_settings()
    index_dir = tmp_path_factory.mktemp("corpus-index")
    return base.model_copy(update={"index_dir": index_dir, "corpus_dir": ROOT / "corpus"})


@pytest.fixture(scope="session")
def corpus_service(encoder, corpus_settings):
    """The default corpus indexed once per session with the real model, opened as a service."""
    from rag.index.build import build_index
    from rag.service import RagService

    build_index([ROOT / "corpus"], corpus_settings.index_dir, corpus_settings, encoder=encoder)
    return RagService.open(corpus_settings.index_dir, corpus_settings, encoder=encoder)


def _unavailable(why: str) -> None:
    """Skip locally; under CI (CI=true) the language model was set up, so its absence fails."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"the language model is not set up under CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def local_model_path():
    """The assembled default GGUF (``bash scripts/setup.sh --llm``); skipped when not set up."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        _unavailable("llama-cpp-python is not installed: run `bash scripts/setup.sh --llm`")
    from rag.config import get_settings
    from rag.errors import ModelError
    from rag.llm.weights import resolve_model_path

    settings = get_settings()
    try:
        return resolve_model_path(settings.llm_model_path, settings.cache_dir)
    except ModelError as exc:
        _unavailable(str(exc))


@pytest.fixture(scope="session")
def local_judge(local_model_path):
    """The answerability judge on the real model, loaded once per session."""
    from rag.answer.written.factory import judge_from_settings
    from rag.config import Settings

    return judge_from_settings(Settings(llm="local", llm_model_path=local_model_path))
