"""Index build, incremental update, manifest checks and hybrid search with a fast fake encoder."""

from __future__ import annotations

import json

import pytest

from rag.config import Settings
from rag.errors import IndexStateError
from rag.index.build import build_index
from rag.index.freshness import MANIFEST
from rag.index.manifest import build_lock, read_manifest
from rag.service import RagService
from tests.fakes import HashingEncoder

DOCS = {
    "alpha.txt": "生產力局主席陳祖恒表示，新質生產力是推動香港發展的重要力量。\n\n香港正推進新型工業化，發展先進製造業。",
    "beta.txt": "數碼港人工智能超算中心首階段投入服務。\n\n政府推出30億元人工智能資助計劃。",
    "gamma.txt": "河套深港科技創新合作區香港園區的第一批大樓於年底落成。",
}


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def settings(tmp_path):
    return Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embed_model="test-hashing")


def build(corpus, settings, encoder=None):
    encoder = encoder or HashingEncoder()
    return build_index([corpus], settings.index_dir, settings, encoder=encoder), encoder


def test_build_writes_manifest_and_searches(corpus, settings):
    summary, enc = build(corpus, settings)
    assert summary.documents == 3 and summary.paragraphs == 5 and summary.encoded == summary.chunks
    manifest = read_manifest(settings.index_dir)
    assert manifest["model"] == {"name": "test-hashing", "id": enc.model_id, "dim": enc.dim,
                                 "passage_dtype": "float32", "vector_space": enc.model_id}
    assert manifest["normaliser"]["opencc"] == "t2s"
    assert set(manifest["checksums"]) >= {
        "vectors.npy", "paragraphs.json", "paragraph_text.bin", "chunks.npy", "sentences.npy",
        "sentence_vectors.npy", "row_keys.npy",
    }
    assert "chunk_keys" not in manifest  # row keys live in the data folder, not the manifest
    svc = RagService.open(settings.index_dir, settings, encoder=enc)
    hits = svc.search("陳祖恒", k=3)
    assert hits[0].para_id.startswith("alpha#p")
    assert "陳祖恒" in hits[0].text
    assert hits[0].dense_score is not None and hits[0].lexical_score is not None


def test_second_run_encodes_nothing(corpus, settings):
    build(corpus, settings)
    summary, enc = build(corpus, settings)
    assert summary.encoded == 0 and enc.encoded == []
    assert summary.new_docs == summary.changed_docs == summary.deleted_docs == []


def test_changed_document_only_its_chunks_are_embedded(corpus, settings):
    build(corpus, settings)
    (corpus / "gamma.txt").write_text("河套香港園區明年將正式進入營運階段。", encoding="utf-8")
    summary, enc = build(corpus, settings)
    assert summary.changed_docs == ["gamma"]
    assert enc.encoded == ["河套香港園區明年將正式進入營運階段。"]
    assert summary.encoded == 1


def test_deleted_document_is_dropped(corpus, settings):
    build(corpus, settings)
    (corpus / "beta.txt").unlink()
    summary, enc = build(corpus, settings)
    assert summary.deleted_docs == ["beta"] and enc.encoded == []
    svc = RagService.open(settings.index_dir, settings, encoder=enc)
    assert all(p.doc_id != "beta" for p in svc.index.paragraphs.values())
    assert all(h.doc_id != "beta" for h in svc.search("人工智能超算中心", k=10))


def test_cache_survives_a_new_index_folder(corpus, settings, tmp_path):
    build(corpus, settings)
    other = settings.model_copy(update={"index_dir": tmp_path / "other"})
    summary, enc = build(corpus, other)
    assert summary.encoded == 0  # the content-hash cache is shared


def test_simplified_query_finds_traditional_text_lexically(corpus, settings):
    _, enc = build(corpus, settings)
    lexical_only = settings.model_copy(update={"lexical_weight": 1.0})
    svc = RagService.open(settings.index_dir, lexical_only, encoder=enc)
    assert svc.search("推进新型工业化", k=1)[0].para_id == "alpha#p2"
    assert svc.search("推進新型工業化", k=1)[0].para_id == "alpha#p2"
    assert svc.search("「人工智能資助計劃」", k=1)[0].para_id == svc.search('"人工智能资助计划"', k=1)[0].para_id


def test_manifest_mismatch_is_refused_with_the_fix(corpus, settings):
    _, enc = build(corpus, settings)
    other = settings.model_copy(update={"chunk_max_chars": 300})
    with pytest.raises(IndexStateError, match="rag index"):
        RagService.open(settings.index_dir, other, encoder=enc)
    other_model = settings.model_copy(update={"embed_model": "intfloat/multilingual-e5-base"})
    with pytest.raises(IndexStateError, match="model"):
        RagService.open(settings.index_dir, other_model, encoder=enc)


def test_tampered_index_file_is_named(corpus, settings):
    _, enc = build(corpus, settings)
    manifest = json.loads((settings.index_dir / MANIFEST).read_text())
    target = settings.index_dir / manifest["data"] / "paragraph_text.bin"
    target.write_bytes(target.read_bytes().replace("陳祖恒".encode(), "某某某".encode()))
    with pytest.raises(IndexStateError, match="paragraph_text.bin"):
        RagService.open(settings.index_dir, settings, encoder=enc)


def test_concurrent_build_refused(corpus, settings):
    with build_lock(settings.index_dir), pytest.raises(IndexStateError, match="already building"):
        build(corpus, settings)


def test_missing_index_says_how_to_build(settings):
    with pytest.raises(IndexStateError, match="rag index"):
        RagService.open(settings.index_dir, settings, encoder=HashingEncoder())
