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
