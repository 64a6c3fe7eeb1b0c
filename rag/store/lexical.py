"""BM25 (bm25s) over normalised jieba tokens; one row per chunk, same order as the chunk store.

:class:`BM25Index` is the :class:`rag.store.base.LexicalIndex` of the FAISS backend.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from rag.errors import IndexStateError
from rag.store.base import ScoredRows
from rag.store.bm25state import BM25State

BM25_DIR = "bm25"
K1 = 1.2
B = 0.75

logging.getLogger("bm25s").setLevel(logging.WARNING)


class BM25Index:
    """A thin wrapper that hides bm25s' vocabulary handling and keeps row ↔ chunk id."""

    def __init__(self, retriever: bm25s.BM25 | None, ids: list[str]) -> None:
        self._bm25 = retriever
        self.ids = ids
        self.state: BM25State | None = None  # the term counts the scores came from (saved with them)

    @classmethod
    def from_state(cls, ids: Sequence[str], state: BM25State) -> BM25Index:
        """The index of ``state``'s rows: scores recomputed from its global statistics (an update)."""
        ids = list(ids)
        if len(ids) != len(state):
            raise ValueError(f"{len(ids)} ids for {len(state)} BM25 rows")
        index = cls(state.retriever(K1, B) if ids else None, ids)
        index.state = state
        return index

    @classmethod
    def build(cls, ids: Sequence[str], tokens: Sequence[list[str]]) -> BM25Index:
        ids = list(ids)
        if not ids:
            return cls(None, [])
        retriever = bm25s.BM25(k1=K1, b=B)
        retriever.index([list(t) for t in tokens], show_progress=False)
        return cls(retriever, ids)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every row for one tokenised query (zeros where no term matches)."""
        if self._bm25 is None or not query_tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(query_tokens), dtype=np.float32)

    def search(self, tokens: list[str], depth: int) -> ScoredRows:
        """Every row scoring at least the ``depth``-th best (ties included, so no arbitrary pick)."""
        scores = self.scores(tokens)
        m = len(scores)
        if not (m and depth):
            return ScoredRows(np.zeros(0, dtype=np.int64), scores)
        # A plain partition finds that score faster than an argpartition of the rows.
        floor = float(np.partition(scores, m - depth)[m - depth]) if depth < m else 0.0
        return ScoredRows(np.flatnonzero(scores >= floor) if floor > 0 else np.flatnonzero(scores > 0), scores)

    def describe(self) -> dict[str, object]:
        return {"library": "bm25s", "k1": K1, "b": B, "method": "lucene", "rows": len(self.ids)}

    def save(self, folder: Path) -> list[str]:
        sub = Path(folder) / BM25_DIR
        sub.mkdir(parents=True, exist_ok=True)
        (sub / "ids.json").write_text(json.dumps(self.ids, ensure_ascii=False), encoding="utf-8")
        if self._bm25 is not None:
            self._bm25.save(str(sub), show_progress=False)
        if self.state is not None:
            self.state.save(sub)
        return sorted(f"{BM25_DIR}/{p.name}" for p in sub.iterdir() if p.is_file())

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = False) -> BM25Index:
        sub = Path(folder) / BM25_DIR
        try:
            ids = json.loads((sub / "ids.json").read_text(encoding="utf-8"))
            retriever = (
                bm25s.BM25.load(str(sub), mmap=mmap, show_progress=False, verbosity=0) if ids else None
            )
        except (OSError, ValueError, KeyError) as exc:
            raise IndexStateError(f"cannot read the BM25 state in {sub}: {exc}; rebuild with `rag index`") from exc
        return cls(retriever, ids)
