"""The store contract, BM25 parity and index wiring on Milvus Lite (a local file per test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="pymilvus is not installed: pip install -e '.[milvus]'")
pytest.importorskip("milvus_lite", reason="milvus-lite is not installed: pip install -e '.[milvus]'")

from rag.store import Store  # noqa: E402
from rag.store.milvus_store import MilvusStore  # noqa: E402
from tests.store_contract import MIXED, LexicalContract, StoreContract  # noqa: E402


class TestMilvusLite(StoreContract):
    @pytest.fixture(autouse=True)
    def _uri(self, tmp_path):
        self.uri = str(tmp_path / "milvus.db")

    def make_store(self, dim):
        return MilvusStore(dim, uri=self.uri, collection="contract")

    def reload(self, store, folder):
        store.save(folder)
        return MilvusStore.load(folder)


class TestMilvusBM25(LexicalContract):
    @pytest.fixture(autouse=True)
    def _uri(self, tmp_path):
        self.uri = str(tmp_path / "bm25.db")

    def make_lexical(self, ids, tokens):
        from rag.store.milvus_store import MilvusBM25, lexical_text
        from tests.store_contract import unit_rows

        store = MilvusStore(8, uri=self.uri, collection="lexical_contract")
        store.add(ids, [i.split("#")[0] for i in ids], unit_rows(len(ids), 8), texts=[lexical_text(t) for t in tokens])
        store.save(Path(self.uri).parent)
        return MilvusBM25(store)


def test_milvus_store_satisfies_protocol(tmp_path):
    assert isinstance(MilvusStore(8, uri=str(tmp_path / "m.db")), Store)


# -- BM25 parity: Milvus' BM25 over our tokens ranks (and, divided by k1 + 1, scores) like ours --

QUERIES = ["推进新型工业化", "推進新型工業化", "香港 发展", "人工智能资助计划", "covid-19 growth", "工業化 香港", "沒有這個詞"]


def _parity_stores(tmp_path, batches):
    import numpy as np

    from rag.store.lexical import BM25Index
    from rag.store.milvus_store import MilvusBM25, lexical_text
    from rag.text.normalise import Normaliser
    from tests.store_contract import unit_rows

    norm = Normaliser("t2s")
    tokens = norm.tokenise_many(MIXED)
    ids = [f"d{i}#p1@0" for i in range(len(MIXED))]
    ours = BM25Index.build(ids, tokens)
    store = MilvusStore(8, uri=str(tmp_path / "bm25.db"))
    vecs = unit_rows(len(MIXED) + 1, 8)
    for part in np.array_split(np.arange(len(MIXED)), batches):
        store.add([ids[i] for i in part], [f"d{i}" for i in part], vecs[part],
                  texts=[lexical_text(tokens[i]) for i in part])
        store.save(tmp_path)  # a flush: Lite makes a segment of each batch
    store.add(["d0#s1"], ["d0"], vecs[-1:])  # a sentence row must not change BM25 statistics
    return norm, ours, MilvusBM25(store)


@pytest.mark.parametrize("batches", [1, 3])
def test_milvus_bm25_matches_ours(tmp_path, batches):
    import numpy as np

    norm, ours, theirs = _parity_stores(tmp_path, batches)
    assert theirs.ids == sorted(ours.ids)
    order = [ours.ids.index(c) for c in theirs.ids]
    for q in QUERIES:
        tokens = norm.tokenise(q)
        a, b = ours.scores(tokens)[order], theirs.scores(tokens)
        if batches == 1:
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=q)
        assert set(np.flatnonzero(a)) == set(np.flatnonzero(b)), q
        if batches == 1:
            assert list(np.argsort(-a, kind="stable")) == list(np.argsort(-b, kind="stable")), q


def test_simplified_query_finds_traditional_text_in_milvus(tmp_path):
    import numpy as np

    norm, _, theirs = _parity_stores(tmp_path, 1)
    best = theirs.ids[int(np.argmax(theirs.scores(norm.tokenise("推进新型工业化"))))]
    assert best == "d1#p1@0"  # 香港正推進新型工業化 (Traditional)


def test_lexical_text_survives_both_analysers():
    import re

    from rag.store.milvus_store import lexical_text

    text = lexical_text(["covid-19", "3.5", "工业化", "a_b"])
    assert text.split() == re.findall(r"\w+", text) == ["covid_19", "3_5", "工业化", "a_b"]


# -- The index end to end on Milvus Lite: the same tests as tests/test_indexer.py, one store over --

from tests.test_indexer import (  # noqa: E402
    build,
    corpus,  # noqa: F401  (fixture)
    test_concurrent_build_refused,  # noqa: F401
    test_deleted_document_is_dropped,  # noqa: F401
    test_manifest_mismatch_is_refused_with_the_fix,  # noqa: F401
    test_missing_index_says_how_to_build,  # noqa: F401
    test_simplified_query_finds_traditional_text_lexically,  # noqa: F401
)
from tests.test_indexer import test_build_writes_manifest_and_searches as _build_and_search  # noqa: E402


@pytest.fixture
def settings(tmp_path):
    from rag.config import Settings

    return Settings(
        index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embed_model="test-hashing",
        store="milvus", milvus_collection="e2e",
    )


def test_build_writes_manifest_and_searches_on_milvus(corpus, settings):  # noqa: F811
    from rag.index.manifest import read_manifest

    with pytest.raises(AssertionError, match="vectors.npy"):  # the one FAISS-only check
        _build_and_search(corpus, settings)
    manifest = read_manifest(settings.index_dir)
    assert manifest["store"]["kind"] == "milvus" and manifest["store"]["schema_version"] == 1
    assert manifest["bm25"]["library"] == "milvus" and "milvus.json" in manifest["checksums"]


def test_same_hits_as_faiss(corpus, settings, tmp_path):  # noqa: F811
    from rag.service import RagService

    build(corpus, settings)
    faiss_settings = settings.model_copy(update={"store": "faiss", "index_dir": tmp_path / "faiss-index"})
    build(corpus, faiss_settings)
    enc = build(corpus, settings)[1]
    on_milvus = RagService.open(settings.index_dir, settings, encoder=enc)
    on_faiss = RagService.open(faiss_settings.index_dir, faiss_settings, encoder=enc)
    # Milvus proposes the candidates; the snapshot's own chunk vectors re-score them.
    assert on_milvus.index.chunk_vectors is not None and on_faiss.index.chunk_vectors is None
    assert np.array_equal(on_milvus.index.chunk_vectors, on_faiss.index.store.vectors_at(np.arange(len(on_faiss.index.chunk_ids))))
    for q in ["陳祖恒", "推进新型工业化", "人工智能資助計劃", "Hong Kong AI supercomputing", "河套"]:
        a, b = on_faiss.search(q, k=5), on_milvus.search(q, k=5)
        assert [h.para_id for h in a] == [h.para_id for h in b], q
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5), q
        assert [h.lexical_score for h in a] == pytest.approx([h.lexical_score for h in b], abs=1e-4), q


def test_ingestion_by_document(corpus, settings):  # noqa: F811
    from rag.store.milvus_store import MilvusStore

    build(corpus, settings)
    (corpus / "gamma.txt").write_text("河套香港園區明年將正式進入營運階段。", encoding="utf-8")
    summary, enc = build(corpus, settings)
    assert summary.changed_docs == ["gamma"] and enc.encoded == ["河套香港園區明年將正式進入營運階段。"]
    (corpus / "beta.txt").unlink()
    summary, enc = build(corpus, settings)
    assert summary.deleted_docs == ["beta"] and enc.encoded == []
    store = MilvusStore(64, uri=str(settings.index_dir / "milvus.db"), collection="e2e")
    assert set(store.document_keys()) == {"alpha", "gamma"}
    assert not [c for c in store.ids() if c.startswith("beta#")]
    summary, enc = build(corpus, settings)  # nothing changed: Milvus is not touched
    assert enc.encoded == [] and summary.encoded == 0


def test_store_mismatch_is_refused(corpus, settings):  # noqa: F811
    from rag.errors import IndexStateError
    from rag.service import RagService

    _, enc = build(corpus, settings)
    with pytest.raises(IndexStateError, match="RAG_STORE"):
        RagService.open(settings.index_dir, settings.model_copy(update={"store": "faiss"}), encoder=enc)


def test_schema_version_mismatch_is_refused(tmp_path):
    from rag.errors import IndexStateError
    from rag.store.milvus_store import SCHEMA_PROPERTY

    store = MilvusStore(8, uri=str(tmp_path / "v.db"), collection="old")
    store._client.alter_collection_properties("old", properties={SCHEMA_PROPERTY: "0"})
    with pytest.raises(IndexStateError, match="schema version 0"):
        MilvusStore(8, uri=str(tmp_path / "v.db"), collection="old")
    MilvusStore(16, uri=str(tmp_path / "v.db"), collection="fresh")
    with pytest.raises(IndexStateError, match="16-d"):
        MilvusStore(8, uri=str(tmp_path / "v.db"), collection="fresh")


def test_second_process_on_a_lite_file_is_refused_clearly(tmp_path):
    """Milvus Lite holds an exclusive lock on its file: one process (any number of threads)."""
    import subprocess
    import sys

    uri = str(tmp_path / "shared.db")
    MilvusStore(4, uri=uri)
    code = (
        "from rag.store.milvus_store import MilvusStore\n"
        "from rag.errors import IndexStateError\n"
        f"try:\n    MilvusStore(4, uri={uri!r})\nexcept IndexStateError as e:\n    print('REFUSED', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "REFUSED" in out and "one process" in out and "RAG_MILVUS_URI=http" in out


def test_serving_snapshot_survives_ingestion_by_another_writer(corpus, settings):  # noqa: F811
    """A loaded index keeps serving while the shared collection is re-ingested under it."""
    from rag.service import RagService

    _, enc = build(corpus, settings)
    serving = RagService.open(settings.index_dir, settings, encoder=enc)
    before = [h.para_id for h in serving.search("人工智能", k=5)]
    (corpus / "beta.txt").write_text("數碼港人工智能超算中心第二階段啟用。", encoding="utf-8")
    (corpus / "delta.txt").write_text("人工智能新聞稿。", encoding="utf-8")
    build(corpus, settings)
    during = serving.search("人工智能", k=5)  # old snapshot: new rows ignored, changed rows tolerated
    assert all(h.para_id in serving.index.paragraphs for h in during) and before
    fresh = RagService.open(settings.index_dir, settings, encoder=enc)
    assert "delta#p1" in [h.para_id for h in fresh.search("人工智能新聞稿", k=3)]


def test_partial_bm25_equals_the_full_scores(tmp_path):
    """top(n) + scores_at(rows): the rows and numbers of the full scoring, from two small searches."""
    norm, _, theirs = _parity_stores(tmp_path, 1)
    for q in QUERIES:
        tokens = norm.tokenise(q)
        full = theirs.scores(tokens)
        rows, scores = theirs.top(tokens, 2)
        if full.any():
            assert len(rows) == min(2, int(np.count_nonzero(full)))
            np.testing.assert_allclose(scores, full[rows], rtol=1e-6)
            assert scores.min() >= np.sort(full)[-len(rows)] - 1e-6
        every = np.arange(len(theirs.ids))
        np.testing.assert_allclose(theirs.scores_at(tokens, every[::-1]), full[::-1], rtol=1e-6, err_msg=q)


def test_lexical_search_filters_by_any_chunk_id(tmp_path):
    """Ids with CJK, colons and the id separators survive the filter expression."""
    store = MilvusStore(4, uri=str(tmp_path / "m.db"), collection="odd")
    odd = ["set:1:2#p1@0", "新聞稿 (2024)#p1@0", "中文#p1@0", "plain#p1@0"]
    store.add(odd, ["d"] * 4, np.eye(4, dtype=np.float32), texts=["工业 化", "工业", "工业 香港", "香港"])
    store.save(tmp_path)
    got = store.lexical_scores(["工业"], ids=odd[:3] + ["missing#p1@0"])
    assert set(got) == set(odd[:3])


def test_english_gloss_on_milvus(corpus, settings):  # noqa: F811
    """The gloss BM25 stays in the index folder beside a Milvus store and scores English questions."""
    from rag.index.manifest import read_manifest
    from rag.service import RagService

    enc = build(corpus, settings)[1]
    manifest = read_manifest(settings.index_dir)
    assert manifest["store"]["kind"] == "milvus" and manifest["gloss"]["rows"] > 0
    svc = RagService.open(settings.index_dir, settings, encoder=enc)
    q = "Who is the chairman of the Productivity Council?"
    c = svc.retriever._components(svc.question(q), enc.encode([q], kind="query")[0])
    assert c.gloss.max() > 0


# -- ids with quotes and backslashes (a jsonl corpus can carry any id) ---------------------------

HOSTILE = ["plain", "it's", 'say "hi"', "back\\slash", "both\\\"'", "end\\", "tab\there", "換行\n", "' or chunk_id != '"]


def test_hostile_ids_round_trip(tmp_path):
    from rag.store.milvus_store import lexical_text

    store = MilvusStore(4, uri=str(tmp_path / "m.db"), collection="hostile")
    vecs = np.eye(4, dtype=np.float32)[np.arange(len(HOSTILE)) % 4]
    store.add(HOSTILE, [f"doc-{i}" for i in HOSTILE], vecs, texts=[lexical_text(["香港", "科技"])] * len(HOSTILE),
              para_ids=HOSTILE, doc_keys=["k"] * len(HOSTILE))
    store.add(HOSTILE[:3], [f"doc-{i}" for i in HOSTILE[:3]], vecs[:3])  # replaced: the old rows go by id
    assert len(store) == len(HOSTILE)
    np.testing.assert_array_equal(store.vectors_for(HOSTILE), vecs)
    for cid in HOSTILE[3:]:  # the filtered lexical search finds exactly that row
        assert list(store.lexical_scores(["香港"], ids=[cid])) == [cid]
    assert set(store.lexical_scores(["香港"], ids=HOSTILE[3:])) == set(HOSTILE[3:])
    for n, cid in enumerate(HOSTILE, start=1):  # deletion by document removes that document only
        assert store.delete_documents([f"doc-{cid}"]) == 1
        assert len(store) == len(HOSTILE) - n
