"""Contract tests every vector store must pass: subclass and implement ``make_store``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.errors import InputError


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class StoreContract:
    dim = 16

    def make_store(self, dim: int):  # pragma: no cover - overridden
        raise NotImplementedError

    def reload(self, store, folder: Path):  # pragma: no cover - overridden
        raise NotImplementedError

    def filled(self, n: int = 40):
        store = self.make_store(self.dim)
        vecs = unit_rows(n, self.dim)
        ids = [f"d{i % 4}#p{i}@0" for i in range(n)]
        docs = [f"d{i % 4}" for i in range(n)]
        store.add(ids, docs, vecs)
        return store, ids, docs, vecs

    def test_empty_store_searches_to_nothing(self):
        store = self.make_store(self.dim)
        assert len(store) == 0
        hits = store.search(unit_rows(2, self.dim), 5)
        assert hits.ids == [[], []]

    def test_exact_vector_is_its_own_best_hit(self):
        store, ids, _, vecs = self.filled()
        hits = store.search(vecs[:5], 3)
        for i in range(5):
            assert hits.ids[i][0] == ids[i]
            assert hits.scores[i][0] == pytest.approx(1.0, abs=1e-4)
            assert hits.scores[i] == sorted(hits.scores[i], reverse=True)

    def test_scores_are_inner_products(self):
        store, ids, _, vecs = self.filled()
        q = unit_rows(1, self.dim, seed=7)
        hits = store.search(q, 10)
        expect = {ids[i]: float(vecs[i] @ q[0]) for i in range(len(ids))}
        for cid, score in zip(hits.ids[0], hits.scores[0], strict=True):
            assert score == pytest.approx(expect[cid], abs=1e-4)
        best = sorted(expect, key=lambda c: -expect[c])[0]
        assert hits.ids[0][0] == best

    def test_k_larger_than_store(self):
        store, ids, _, vecs = self.filled(5)
        assert len(store.search(vecs[:1], 50).ids[0]) == 5

    def test_delete_documents_removes_all_their_rows(self):
        store, ids, docs, vecs = self.filled()
        removed = store.delete_documents(["d1"])
        assert removed == docs.count("d1")
        assert len(store) == len(ids) - removed
        hits = store.search(vecs, 40)
        assert all(not cid.startswith("d1#") for row in hits.ids for cid in row)
        assert store.delete_documents(["nope"]) == 0

    def test_add_replaces_existing_id(self):
        store, ids, docs, vecs = self.filled(8)
        new = unit_rows(1, self.dim, seed=99)
        store.add([ids[0]], [docs[0]], new)
        assert len(store) == 8
        assert np.allclose(store.vectors_for([ids[0]])[0], new[0], atol=1e-5)

    def test_wrong_dimension_is_refused(self):
        store = self.make_store(self.dim)
        with pytest.raises(InputError, match="shape"):
            store.add(["a"], ["d"], np.ones((1, self.dim + 1), dtype=np.float32))

    def test_save_and_load_round_trip(self, tmp_path):
        store, ids, _, vecs = self.filled()
        before = store.search(vecs[:3], 5)
        again = self.reload(store, tmp_path)
        assert len(again) == len(store)
        assert sorted(again.ids()) == sorted(ids)
        after = again.search(vecs[:3], 5)
        assert after.ids == before.ids
        assert np.allclose(after.scores, before.scores, atol=1e-5)
