"""The seams of a backend: a vector store (:class:`VectorSearch` for retrieval,
:class:`VectorWriter` for the build, :class:`Store` for both) and :class:`LexicalIndex` (BM25).

FAISS + bm25s (``rag/store/faiss_store.py``, ``rag/store/lexical.py``) and Milvus
(``rag/store/milvus_store.py``) implement both; ``rag/store/factory.py`` picks the pair a
manifest or the settings name. Retrieval (``rag/retrieval/hybrid.py``) calls nothing of a store
but :class:`VectorSearch`, the build nothing but :class:`VectorWriter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from rag.errors import InputError


class VectorHits(NamedTuple):
    """Search results for a batch of queries: ``ids[i]`` and ``scores[i]`` ranked best first."""

    ids: list[list[str]]
    scores: list[list[float]]


def check_queries(queries: np.ndarray, dim: int, k: int) -> np.ndarray:
    """Query rows as contiguous float32 ``(n, dim)``; refuses a wrong width or ``k < 1``."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if queries.shape[1] != dim:
        raise InputError(f"query vectors must have {dim} columns, got {queries.shape[1]}")
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    return queries


@runtime_checkable
class VectorSearch(Protocol):
    """The search side of a store: all that retrieval (``rag/retrieval/hybrid.py``) calls.

    Rows are those of a loaded index (``0..n-1``, pinned by :meth:`VectorWriter.pin`).
    """

    def search_rows(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ``(scores, rows)`` arrays per query row; rows index the pinned ids.

        A row of -1 pads a short result or stands for a hit the pinned rows do not know (a
        shared store may hold rows written after the index was loaded).
        """

    def cosines_at(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Inner product of ``query`` with the vector of each pinned row, in order (float32);
        -1 for a row whose vector has vanished (another process re-indexed a shared store)."""


@runtime_checkable
class VectorWriter(Protocol):
    """The build side of a store, keyed by chunk id: what ``rag index`` (``rag/index/build.py``,
    ``rag/index/rows.py``) and the backend factory call to fill, read back, describe, save and pin it."""

    dim: int

    def __len__(self) -> int: ...

    def add(self, ids: Sequence[str], doc_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors; an id already present is replaced."""

    def delete_documents(self, doc_ids: Sequence[str]) -> int:
        """Remove every vector of these documents; returns how many were removed."""

    def search(self, queries: np.ndarray, k: int) -> VectorHits:
        """Top-k ids by inner product for each query row."""

    def vectors_for(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of these ids, in order (KeyError for an unknown id)."""

    def ids(self) -> list[str]:
        """All ids, in storage order."""

    def save(self, folder: Path) -> list[str]:
        """Write the store into ``folder``; returns the file names written."""

    def describe(self) -> dict[str, object]:
        """Kind and parameters, recorded in the manifest."""

    def pin(self, ids: Sequence[str], vectors: np.ndarray | None = None) -> None:
        """Serve the chunk rows ``ids`` (a loaded index's, in its row order).

        ``vectors`` is the index's own snapshot of their vectors, for a store that keeps its
        vectors elsewhere. Raises ``ValueError`` when the store cannot serve those rows.
        """


@runtime_checkable
class Store(VectorSearch, VectorWriter, Protocol):
    """A store of L2-normalised chunk vectors, scored by inner product (= cosine): both sides.

    A loaded index numbers its chunk rows ``0..n-1``; :meth:`pin` tells the store that
    numbering, and :meth:`search_rows` / :meth:`cosines_at` speak in it. Every backend
    (``FaissStore``, ``MilvusStore``) is one; ``tests/store_contract.py`` checks both sides.
    """


class LexicalHits(Protocol):
    """The lexical side of one question: its top rows, and the exact score of any row."""

    @property
    def rows(self) -> np.ndarray:
        """The best-scoring rows (int64), every one scoring above 0."""

    def at(self, rows: np.ndarray) -> np.ndarray:
        """BM25 of these rows (float32, in order; 0 where no term matches)."""


@runtime_checkable
class LexicalIndex(Protocol):
    """BM25 over the chunk rows (same rows, same order as the pinned :class:`Store` rows)."""

    @property
    def ids(self) -> Sequence[str]:
        """The chunk id of each row (read-only here: a property, so a ``list`` attribute fits)."""

    def __len__(self) -> int: ...

    def search(self, tokens: list[str], depth: int) -> LexicalHits:
        """The question's top ``depth`` rows (ties at the last place included where the index
        can tell) and a way to score any other row."""

    def save(self, folder: Path) -> list[str]:
        """Write the index into ``folder``; returns the file names written (none: kept elsewhere)."""

    def describe(self) -> dict[str, object]:
        """Library and parameters, recorded in the manifest."""


class ScoredRows(NamedTuple):
    """:class:`LexicalHits` of an index that scores every row at once (bm25s)."""

    rows: np.ndarray
    scores: np.ndarray  # the score of every row

    def at(self, rows: np.ndarray) -> np.ndarray:
        return self.scores[rows]
