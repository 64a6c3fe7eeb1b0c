"""Contract tests of the two backend seams (rag/store/base.py), for every implementation.

``StoreContract``: subclass and implement ``make_store`` and ``reload``; ``LexicalContract``:
implement ``make_lexical``. Together they call every method of ``Store`` and ``LexicalIndex``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.errors import InputError
from rag.store.base import LexicalIndex, Store, VectorSearch, VectorWriter


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

    def test_satisfies_the_protocol(self):
        """Both sides of the seam: what retrieval calls and what the build calls (mypy checks the
        same through the return types of rag/store/factory.py)."""
        store = self.make_store(self.dim)
        assert isinstance(store, VectorSearch) and isinstance(store, VectorWriter) and isinstance(store, Store)

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

    def test_pinned_rows_search_and_rescore_like_search(self):
        store, ids, _, vecs = self.filled()
        order = store.ids()
        assert sorted(order) == sorted(ids)
        store.pin(order)
        row_of = {c: r for r, c in enumerate(order)}
        queries = np.vstack([vecs[:3], unit_rows(1, self.dim, seed=5)])
        by_id = store.search(queries, 7)
        scores, rows = store.search_rows(queries, 7)
        assert rows.dtype.kind == "i" and scores.shape == rows.shape == (4, 7)
        for q in range(len(queries)):
            assert [order[r] for r in rows[q]] == by_id.ids[q]
            np.testing.assert_allclose(scores[q], by_id.scores[q], atol=1e-5)
        assert [order[r] for r in rows[:3, 0]] == ids[:3]  # each vector finds itself first
        pick = np.array([row_of[ids[5]], row_of[ids[0]], row_of[ids[2]], row_of[ids[5]]])
        cos = store.cosines_at(pick, queries[3])
        assert cos.dtype == np.float32
        np.testing.assert_allclose(cos, vecs[[5, 0, 2, 5]] @ queries[3], atol=1e-5)

    def test_search_rows_pads_a_short_result_with_minus_one(self):
        store, ids, _, vecs = self.filled(3)
        store.pin(store.ids())
        scores, rows = store.search_rows(vecs[:1], 5)
        found = rows[0][rows[0] >= 0]
        assert len(found) == 3 and sorted(found.tolist()) == [0, 1, 2]
        assert np.all(rows[0][len(found):] == -1)

    def test_search_rows_refuses_a_bad_query(self):
        store, _, _, vecs = self.filled(3)
        store.pin(store.ids())
        with pytest.raises(InputError, match="columns"):
            store.search_rows(np.ones((1, self.dim + 2), dtype=np.float32), 2)
        with pytest.raises(InputError, match="k must"):
            store.search_rows(vecs[:1], 0)


MIXED = [
    "生產力局主席陳祖恒表示，新質生產力是推動香港發展的重要力量。",
    "香港正推進新型工業化，發展先進製造業。",
    "数码港人工智能超算中心首阶段投入服务。",
    "政府推出30億元人工智能資助計劃, COVID-19 3.5% growth.",
    "河套深港科技創新合作區香港園區的第一批大樓於年底落成。",
    "Hong Kong pushes new industrialisation and AI.",
    "香港香港香港 工業 工业化",
]


class LexicalContract:
    """Every BM25 backend scores the normalised tokens of the same chunk rows the same way."""

    def make_lexical(self, ids: list[str], tokens: list[list[str]]):  # pragma: no cover - overridden
        raise NotImplementedError

    def corpus(self):
        from rag.text.normalise import Normaliser

        norm = Normaliser("t2s")
        ids = [f"d{i}#p1@0" for i in range(len(MIXED))]  # sorted: the row order of every backend
        return norm, ids, self.make_lexical(ids, norm.tokenise_many(MIXED))

    def test_satisfies_the_protocol(self):
        _, ids, lex = self.corpus()
        assert isinstance(lex, LexicalIndex)
        assert list(lex.ids) == ids and len(lex) == len(ids)
        assert lex.describe()["k1"] == 1.2

    def test_top_rows_are_the_best_and_at_scores_any_row(self):
        norm, ids, lex = self.corpus()
        every = np.arange(len(ids))
        for q in ["推进新型工业化", "香港 发展", "人工智能资助计划", "covid-19 growth"]:
            tokens = norm.tokenise(q)
            hits = lex.search(tokens, 2)
            full = hits.at(every)
            assert full.dtype == np.float32 and full.shape == (len(ids),)
            np.testing.assert_allclose(hits.at(every[::-1]), full[::-1], rtol=1e-6)
            assert len(hits.rows) >= min(2, int(np.count_nonzero(full))) and np.all(full[hits.rows] > 0)
            assert full[hits.rows].min() >= np.sort(full)[-2] - 1e-6, q  # no better row left out
            assert full[ids.index("d5#p1@0")] == 0 or "growth" in q  # no shared term, no score

    def test_known_scores_by_hand(self):
        """香港 in rows 0, 1, 4 (once each) and row 6 (three times): a higher tf scores higher."""
        norm, ids, lex = self.corpus()
        full = lex.search(["香港"], len(ids)).at(np.arange(len(ids)))
        assert sorted(np.flatnonzero(full).tolist()) == [0, 1, 4, 6]
        assert full[6] == full.max()

    def test_no_match_and_no_tokens_find_nothing(self):
        _, ids, lex = self.corpus()
        for tokens in (["沒有這個詞"], []):
            hits = lex.search(tokens, 3)
            assert len(hits.rows) == 0
            assert not hits.at(np.arange(len(ids))).any()
