"""The HNSW search breadth is a search-time setting: it applies to indexes already built."""

from __future__ import annotations

import numpy as np
import pytest

from rag.config import Settings
from rag.index.loaded import LoadedIndex
from rag.index.manifest import read_manifest
from tests.test_reliability_index import write_corpus


def test_ef_search_comes_from_the_settings_at_load(tmp_path):
    from rag.index.build import build_index
    from tests.fakes import HashingEncoder

    corpus = write_corpus(tmp_path / "corpus", seed=11, files=3, paras=10)
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embed_model="test-hashing",
                        hnsw_threshold=10, hnsw_ef_search=64)
    build_index([corpus], settings.index_dir, settings, encoder=HashingEncoder())
    assert read_manifest(settings.index_dir)["store"]["hnsw_ef_search"] == 64  # recorded at build
    for ef in (64, 300):
        loaded = LoadedIndex.open(settings.index_dir, settings=settings.model_copy(update={"hnsw_ef_search": ef}))
        assert loaded.store.approximate
        index = loaded.store._ready_index()
        assert index.hnsw.efSearch == ef
        q = np.asarray(loaded.store.vectors_at(np.array([0])), dtype=np.float32)
        assert loaded.store.search_rows(q, 1)[1][0][0] == 0  # a stored vector finds itself
    assert Settings().hnsw_ef_search == 256
    with pytest.raises(ValueError, match="hnsw_ef_search"):
        Settings(hnsw_ef_search=0)
