import numpy as np

from rag.store import FaissStore, Store
from tests.store_contract import LexicalContract, StoreContract, unit_rows


class TestFaissFlat(StoreContract):
    def make_store(self, dim):
        return FaissStore(dim)

    def reload(self, store, folder):
        store.save(folder)
        return FaissStore.load(folder)


class TestFaissHnsw(StoreContract):
    """The same contract with the approximate index forced on (threshold 1)."""

    def make_store(self, dim):
        return FaissStore(dim, hnsw_threshold=1)

    def reload(self, store, folder):
        store.save(folder)
        return FaissStore.load(folder, hnsw_threshold=1)


class TestBM25Index(LexicalContract):
    def make_lexical(self, ids, tokens):
        from rag.store.lexical import BM25Index

        return BM25Index.build(ids, tokens)


def test_faiss_pin_refuses_rows_it_does_not_hold():
    import pytest

    store = FaissStore(8)
    store.add(["a", "b"], ["d", "d"], unit_rows(2, 8))
    store.pin(["a", "b"])
    for wrong in (["a"], ["b", "a"], ["a", "b", "c"]):
        with pytest.raises(ValueError, match="rows"):
            store.pin(wrong)


def test_faiss_store_satisfies_protocol():
    assert isinstance(FaissStore(8), Store)


def test_hnsw_recall_against_flat():
    dim, n = 32, 3000
    vecs = unit_rows(n, dim, seed=1)
    ids = [f"c{i}" for i in range(n)]
    flat, hnsw = FaissStore(dim), FaissStore(dim, hnsw_threshold=1)
    for s in (flat, hnsw):
        s.add(ids, ["d"] * n, vecs)
    queries = unit_rows(100, dim, seed=2)
    exact = flat.search(queries, 10).ids
    approx = hnsw.search(queries, 10).ids
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert hnsw.describe()["index"] == "hnsw" and flat.describe()["index"] == "flat_ip"
    assert recall >= 0.95, recall


def test_truncated_vector_file_names_the_file(tmp_path):
    import pytest

    from rag.errors import IndexStateError

    store = FaissStore(8)
    store.add(["a", "b"], ["d", "d"], unit_rows(2, 8))
    store.save(tmp_path)
    path = tmp_path / "vectors.npy"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IndexStateError, match="vectors"):
        FaissStore.load(tmp_path)


def test_loaded_hnsw_rescores_from_the_graphs_own_vectors(tmp_path):
    """One copy of the vectors after load: the HNSW file's, memory-mapped, equal to the saved ones."""
    dim, n = 16, 300
    vecs = unit_rows(n, dim, seed=3)
    store = FaissStore(dim, hnsw_threshold=1)
    store.add([f"c{i}" for i in range(n)], ["d"] * n, vecs)
    store.save(tmp_path)
    loaded = FaissStore.load(tmp_path, hnsw_threshold=1)
    assert not isinstance(loaded._vecs, np.memmap)  # not vectors.npy: the graph's storage
    np.testing.assert_array_equal(loaded.vectors_at(np.arange(n)), vecs)
    rows = np.array([5, 0, 299, 5])
    np.testing.assert_array_equal(loaded.vectors_at(rows), vecs[rows])
    scores, found = loaded.search_rows(vecs[:3], 1)
    assert found[:, 0].tolist() == [0, 1, 2] and np.allclose(scores[:, 0], 1.0, atol=1e-5)
    loaded.add(["extra"], ["e"], unit_rows(1, dim, seed=4))  # writes go to a copy, never the mapping
    assert len(loaded) == n + 1 and loaded.search(unit_rows(1, dim, seed=4), 1).ids == [["extra"]]
