"""rag/index/compat.py: the one answer to "does this index fit these settings?", with its fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import IndexStateError
from rag.index import compat

ROOT = Path(__file__).resolve().parents[1]


def manifest_for(settings: Settings, **changes: object) -> dict:
    """A manifest as a build with ``settings`` records it (the parts compat reads), then ``changes``."""
    from rag.index.compat import gloss_query_config as query_config

    manifest = {
        "format_version": compat.FORMAT_VERSION,
        **compat.expected_config(settings),
        "build_key": compat.build_key(settings, passage_dtype="float32"),
        "model": {"name": settings.embed_model, "id": "some-model-id"},
        "store": {"kind": settings.store},
        "gloss": query_config(),
    }
    manifest.update(changes)
    return manifest


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embed_model="test-hashing")


def test_an_index_built_with_the_settings_fits(settings):
    manifest = manifest_for(settings)
    assert compat.check(manifest, settings, settings.index_dir) == []
    compat.require_fit(manifest, settings, settings.index_dir)
    compat.require_store("faiss", settings, settings.index_dir)
    assert compat.format_fits(manifest)
    assert compat.can_take_over(manifest, manifest["build_key"], settings)


@pytest.mark.parametrize(("change", "what", "words"), [
    ({"model": {"name": "other-model"}}, "model", "RAG_EMBED_MODEL is 'test-hashing'"),
    ({"normaliser": {"opencc": "s2t"}}, "normaliser", "built with normaliser"),
    ({"chunking": {"max_chars": 1}}, "chunking", "built with chunking"),
    ({"gloss": {"version": -1, "stemmer": "x", "spelling": "none"}}, "gloss", "English gloss built with 'x'"),
])
def test_each_mismatch_is_named_with_the_command_that_fixes_it(settings, change, what, words):
    manifest = manifest_for(settings, **change)
    found = compat.check(manifest, settings, settings.index_dir)
    assert [m.what for m in found] == [what]
    assert words in found[0].message and f"rag index --index {settings.index_dir}" in found[0].message
    with pytest.raises(IndexStateError, match="re-index"):
        compat.require_fit(manifest, settings, settings.index_dir)


def test_an_index_without_a_gloss_fits_only_without_the_gloss_channel(settings):
    manifest = manifest_for(settings)
    del manifest["gloss"]
    assert [m.what for m in compat.check(manifest, settings, "idx")] == ["gloss"]
    assert "RAG_GLOSS_WEIGHT=0" in compat.check(manifest, settings, "idx")[0].message
    assert compat.check(manifest, settings.model_copy(update={"gloss_weight": 0.0}), "idx") == []


def test_format_store_and_model_id(settings, tmp_path):
    older = {"format_version": compat.FORMAT_VERSION - 1}
    assert not compat.format_fits(older) and not compat.format_fits([])
    msg = compat.format_mismatch(older, tmp_path / "manifest.json", "idx")
    assert msg is not None and f"this version reads {compat.FORMAT_VERSION}" in msg.message
    assert compat.format_mismatch(manifest_for(settings), tmp_path / "manifest.json", "idx") is None

    with pytest.raises(IndexStateError, match="RAG_STORE=milvus"):
        compat.require_store("milvus", settings, "idx")
    assert [m.what for m in compat.store_mismatches("faiss", None, "idx")] == []
    assert "unknown store" in compat.store_mismatches("elastic", None, "idx")[0].message

    manifest = manifest_for(settings)
    compat.require_model_id(manifest, "some-model-id", "idx")
    compat.require_model_id({"model": {}}, "anything", "idx")  # an index without an id fits any
    with pytest.raises(IndexStateError, match="loaded encoder is 'other'"):
        compat.require_model_id(manifest, "other", "idx")


def test_rows_are_taken_over_only_with_the_same_key_and_a_local_store(settings):
    manifest = manifest_for(settings)
    key = manifest["build_key"]
    assert not compat.can_take_over(None, key, settings)
    assert not compat.can_take_over(manifest, {**key, "pipeline_version": -1}, settings)
    assert not compat.can_take_over(manifest, key, settings.model_copy(update={"store": "milvus"}))


def test_compat_imports_nothing_heavy():
    """`rag index` answers "up to date" through compat and freshness before numpy or FAISS load."""
    code = ("import sys, rag.index.compat, rag.index.freshness; "
            "print(sorted(m for m in ('numpy', 'torch', 'faiss', 'bm25s') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
