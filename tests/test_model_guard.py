"""The guard in conftest.py: a test without the ``model`` marker cannot load a real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import _LOADED, REAL_WEIGHTS_BYTES, RealModelInUnmarkedTest


def _forgive(request: pytest.FixtureRequest) -> None:
    """Clear what the guard recorded, so that this test's own refused load does not fail it."""
    request.node.stash[_LOADED] = []


def _weights_folder(tmp_path: Path, size: int) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    with open(folder / "model.safetensors", "wb") as fh:
        fh.truncate(size)  # sparse: the size of real weights without writing them
    return folder


@pytest.mark.parametrize("backend", ["LeanEncoder", "SentenceTransformerEncoder"])
def test_real_embedding_weights_are_refused(tmp_path, request, backend):
    import rag.embedding

    folder = _weights_folder(tmp_path, REAL_WEIGHTS_BYTES)
    with pytest.raises(RealModelInUnmarkedTest, match="without the `model` marker"):
        getattr(rag.embedding, backend)(folder)
    assert request.node.stash[_LOADED]  # kept, should the test have swallowed the error
    _forgive(request)


def test_tiny_test_models_are_let_through(tmp_path):
    from rag.embedding import LeanEncoder
    from rag.errors import ModelError

    folder = _weights_folder(tmp_path, 1024)  # too small to be real: the loader itself refuses it
    with pytest.raises(ModelError):
        LeanEncoder(folder)


def test_the_language_model_is_refused(tmp_path, request):
    from rag.llm.engine import LocalModel

    with pytest.raises(RealModelInUnmarkedTest, match="the language model"):
        LocalModel(tmp_path / "model.gguf", threads=1)
    _forgive(request)


@pytest.mark.model
def test_a_marked_test_passes_the_guard(tmp_path):
    from rag.errors import ModelError
    from rag.llm.engine import LocalModel

    with pytest.raises(ModelError):  # llama.cpp missing, or no such file: past the guard either way
        LocalModel(tmp_path / "model.gguf", threads=1)
