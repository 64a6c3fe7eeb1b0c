"""The vector store seam: anything that can add, delete by document, search, save and load."""

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
class Store(Protocol):
    """A store of L2-normalised chunk vectors, scored by inner product (= cosine)."""

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
