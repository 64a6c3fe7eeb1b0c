"""FAISS implementation of the store: exact inner product while small, HNSW above a threshold."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

from rag.errors import IndexStateError, InputError
from rag.store.base import VectorHits, check_queries

VECTORS_FILE = "vectors.npy"
IDS_FILE = "vector_ids.json"
FAISS_FILE = "vectors.faiss"
GRAPH_ROWS_FILE = "graph_rows.npy"  # int64: the HNSW graph's row of each store row (graph has masked rows)
# An updated HNSW graph keeps the rows of deleted chunks, masked out of every search, until they
# pass this share of the graph; then it is rebuilt from the live vectors.
MASKED_SHARE_REBUILD = 0.2


class FaissStore:
    """Vectors live in a numpy array (memory-mapped after load); the FAISS index is derived.

    Below ``hnsw_threshold`` vectors the index is an exact ``IndexFlatIP``; at or above it an
    ``IndexHNSWFlat`` (inner product) whose recall against the exact index is measured by
    ``benchmarks/bench_store.py``. Deletion compacts the arrays and rebuilds the index lazily.

    :meth:`updated` makes the store of the next index from this one: exact stores copy the
    kept vectors and append the new ones; an HNSW graph gets the new vectors added and the
    removed ones masked (``graph_rows`` maps store rows to graph rows), and is rebuilt only when
    the masked rows pass ``MASKED_SHARE_REBUILD`` of it.
    """

    def __init__(
        self,
        dim: int,
        *,
        hnsw_threshold: int = 50_000,
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 80,
        hnsw_ef_search: int = 256,
    ) -> None:
        if dim <= 0:
            raise InputError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.hnsw_ef_search = hnsw_ef_search
        self._vecs = np.zeros((0, dim), dtype=np.float32)
        self._ids: list[str] = []
        self._docs: list[str] = []
        self._row_of: dict[str, int] | None = {}
        self._index: faiss.Index | None = None
        self._graph_rows: np.ndarray | None = None  # store row -> graph row, when the graph masks rows
        self._store_row: np.ndarray | None = None  # graph row -> store row (-1: masked)
        self._search_params: Any = None  # faiss.SearchParametersHNSW (absent from faiss's own stubs)
        self._lock = threading.Lock()

    # -- contents -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> list[str]:
        return list(self._ids)

    def id_at(self, row: int) -> str:
        return self._ids[row]

    @property
    def _row(self) -> dict[str, int]:
        """id -> storage row, built on first use (a loaded index searches by row, not by id)."""
        if self._row_of is None:
            self._row_of = {cid: j for j, cid in enumerate(self._ids)}
        return self._row_of

    def add(self, ids: Sequence[str], doc_ids: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InputError(f"vectors must have shape (n, {self.dim}), got {vectors.shape}")
        if not (len(ids) == len(doc_ids) == len(vectors)):
            raise InputError("ids, doc_ids and vectors must have the same length")
        if len(set(ids)) != len(ids):
            raise InputError("duplicate ids in one add() call")
        replaced = [i for i in ids if i in self._row]
        if replaced:
            self._remove_rows({self._row[i] for i in replaced})
        start = len(self._ids)
        self._vecs = np.vstack([np.asarray(self._vecs), vectors]) if start else vectors.copy()
        self._ids.extend(ids)
        self._docs.extend(doc_ids)
        self._row.update({cid: start + j for j, cid in enumerate(ids)})
        self._index = None
        self._set_graph_rows(None)

    def delete_documents(self, doc_ids: Sequence[str]) -> int:
        gone = set(doc_ids)
        rows = {r for r, d in enumerate(self._docs) if d in gone}
        self._remove_rows(rows)
        return len(rows)

    def _remove_rows(self, rows: set[int]) -> None:
        if not rows:
            return
        keep = [r for r in range(len(self._ids)) if r not in rows]
        self._vecs = np.asarray(self._vecs)[keep]
        self._ids = [self._ids[r] for r in keep]
        self._docs = [self._docs[r] for r in keep]
        self._row_of = None
        self._index = None
        self._set_graph_rows(None)

    def _set_graph_rows(self, graph_rows: np.ndarray | None, graph_size: int = 0) -> None:
        self._graph_rows = graph_rows
        self._store_row = None
        self._search_params = None
        if graph_rows is None:
            return
        store_row = np.full(graph_size, -1, dtype=np.int64)
        store_row[graph_rows] = np.arange(len(graph_rows), dtype=np.int64)
        self._store_row = store_row
        live = np.zeros(graph_size, dtype=bool)
        live[graph_rows] = True
        self._bitmap = np.packbits(live, bitorder="little")  # kept alive: the selector points into it
        # faiss's bundled stubs lack this class (1.15); "unused-ignore": a release that adds it
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined, unused-ignore]
        params.sel = faiss.IDSelectorBitmap(graph_size, faiss.swig_ptr(self._bitmap))
        self._selector = params.sel
        self._search_params = params

    @property
    def masked(self) -> int:
        """Graph rows of removed vectors, masked out of searches (0 unless an updated HNSW graph)."""
        return 0 if self._graph_rows is None or self._store_row is None else len(self._store_row) - len(self._ids)

    def updated(
        self,
        sources: np.ndarray,
        new_vectors: np.ndarray,
        ids: Sequence[str],
        doc_ids: Sequence[str],
        *,
        folder: Path | None = None,
        hnsw_threshold: int | None = None,
        hnsw_ef_search: int | None = None,
    ) -> FaissStore:
        """The next store: row ``i`` is this store's row ``sources[i]``, or (where it is -1) the
        next row of ``new_vectors``. ``folder`` is where this store was loaded from (its HNSW
        graph is read from there, never changed in place)."""
        sources = np.asarray(sources, dtype=np.int64)
        new_vectors = np.asarray(new_vectors, dtype=np.float32).reshape(-1, self.dim)
        fresh = sources < 0
        if int(fresh.sum()) != len(new_vectors) or len(ids) != len(sources) or len(doc_ids) != len(sources):
            raise ValueError("sources, new vectors, ids and doc ids disagree")
        out = FaissStore(self.dim, hnsw_threshold=hnsw_threshold or self.hnsw_threshold, hnsw_m=self.hnsw_m,
                         hnsw_ef_construction=self.hnsw_ef_construction,
                         hnsw_ef_search=hnsw_ef_search or self.hnsw_ef_search)
        vecs = np.empty((len(sources), self.dim), dtype=np.float32)
        vecs[~fresh] = self.vectors_at(sources[~fresh])
        vecs[fresh] = new_vectors
        out._vecs, out._ids, out._docs, out._row_of = vecs, list(ids), list(doc_ids), None
        if not (out.approximate and self.approximate and folder is not None and (Path(folder) / FAISS_FILE).exists()):
            return out  # exact, or no graph to update: built from the vectors when needed
        # a private, writable copy; read_index returns the concrete class (here the HNSW graph)
        graph = cast(faiss.IndexHNSW, faiss.read_index(str(Path(folder) / FAISS_FILE)))
        before = self._graph_rows if self._graph_rows is not None else np.arange(graph.ntotal, dtype=np.int64)
        graph_rows = np.empty(len(sources), dtype=np.int64)
        graph_rows[~fresh] = before[sources[~fresh]]
        graph_rows[fresh] = graph.ntotal + np.arange(len(new_vectors), dtype=np.int64)
        masked = graph.ntotal + len(new_vectors) - len(sources)
        if masked > MASKED_SHARE_REBUILD * (graph.ntotal + len(new_vectors)):
            return out  # too many masked rows: a fresh graph
        if len(new_vectors):
            graph.hnsw.efConstruction = self.hnsw_ef_construction
            graph.add(new_vectors)
        out._index = graph
        identity = masked == 0 and np.array_equal(graph_rows, np.arange(len(sources)))
        out._set_graph_rows(None if identity else graph_rows, graph.ntotal)
        return out

    def vectors_for(self, ids: Sequence[str]) -> np.ndarray:
        rows = [self._row[i] for i in ids]
        return np.asarray(self._vecs[rows], dtype=np.float32)

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of these storage rows (positions in :meth:`ids`), in order."""
        return np.asarray(self._vecs[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def pin(self, ids: Sequence[str], vectors: np.ndarray | None = None) -> None:
        """Storage rows are the index's chunk rows (written together): check that they line up."""
        n = len(ids)
        if len(self._ids) != n or any(self._ids[i] != ids[i] for i in ((0, n - 1) if n else ())):
            raise ValueError(f"{len(self._ids)} vector rows for {n} chunk rows, or in another order")

    def cosines_at(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        return self.vectors_at(rows) @ query

    def search_rows(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`search`, as (scores, storage rows) arrays; rows of -1 pad a short result."""
        queries = check_queries(queries, self.dim, k)
        if not self._ids:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        index = self._ready_index()
        if self._search_params is None:
            return index.search(queries, min(k, len(self._ids)))
        self._search_params.efSearch = max(self.hnsw_ef_search, min(k, len(self._ids)))
        assert self._store_row is not None  # set with the search parameters (_set_graph_rows)
        scores, rows = index.search(queries, min(k, len(self._ids)), params=self._search_params)
        rows = np.where(rows >= 0, self._store_row[np.maximum(rows, 0)], -1)  # graph rows -> store rows
        return scores, rows

    # -- search ---------------------------------------------------------------------------
    @property
    def approximate(self) -> bool:
        return len(self._ids) >= self.hnsw_threshold

    def _build(self) -> faiss.Index:
        vecs = np.ascontiguousarray(self._vecs, dtype=np.float32)
        index: faiss.Index
        if self.approximate:
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.hnsw_ef_construction
            index.add(vecs)
        else:
            index = faiss.IndexFlatIP(self.dim)
            index.add(vecs)
        return index

    def _ready_index(self) -> faiss.Index:
        with self._lock:
            if self._index is None:
                self._index = self._build()
            if isinstance(self._index, faiss.IndexHNSWFlat):
                self._index.hnsw.efSearch = self.hnsw_ef_search
            return self._index

    def search(self, queries: np.ndarray, k: int) -> VectorHits:
        queries = check_queries(queries, self.dim, k)
        if not self._ids:
            return VectorHits([[] for _ in queries], [[] for _ in queries])
        scores, rows = self.search_rows(queries, k)
        out_ids, out_scores = [], []
        for srow, rrow in zip(scores, rows, strict=True):
            keep = rrow >= 0
            out_ids.append([self._ids[r] for r in rrow[keep]])
            out_scores.append([float(s) for s in srow[keep]])
        return VectorHits(out_ids, out_scores)

    # -- persistence ----------------------------------------------------------------------
    def describe(self) -> dict[str, object]:
        return {
            "kind": "faiss",
            "index": "hnsw" if self.approximate else "flat_ip",
            "dim": self.dim,
            "count": len(self._ids),
            "hnsw_threshold": self.hnsw_threshold,
            "hnsw_m": self.hnsw_m,
            "hnsw_ef_search": self.hnsw_ef_search,
            "masked": self.masked,
        }

    def save(self, folder: Path) -> list[str]:
        folder = Path(folder)
        np.save(folder / VECTORS_FILE, np.ascontiguousarray(self._vecs, dtype=np.float32))
        (folder / IDS_FILE).write_text(
            json.dumps({"ids": self._ids, "doc_ids": self._docs}, ensure_ascii=False), encoding="utf-8"
        )
        files = [VECTORS_FILE, IDS_FILE]
        if self.approximate:  # an HNSW graph is slow to rebuild: keep it
            faiss.write_index(self._ready_index(), str(folder / FAISS_FILE))
            files.append(FAISS_FILE)
            if self._graph_rows is not None:
                np.save(folder / GRAPH_ROWS_FILE, self._graph_rows)
                files.append(GRAPH_ROWS_FILE)
        return files

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = True, **params: int) -> FaissStore:
        folder = Path(folder)
        current = folder / VECTORS_FILE
        try:
            vecs = np.load(current, mmap_mode="r" if mmap else None)
            current = folder / IDS_FILE
            meta = json.loads(current.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexStateError(f"cannot read {current} ({exc}); rebuild the index with `rag index`") from exc
        if vecs.ndim != 2 or len(vecs) != len(meta["ids"]):
            raise IndexStateError(f"{folder / VECTORS_FILE} does not match {IDS_FILE}; rebuild with `rag index`")
        store = cls(int(vecs.shape[1]), **params)
        store._vecs = vecs
        store._ids = list(meta["ids"])
        store._docs = list(meta["doc_ids"])
        store._row_of = None
        if store.approximate and (folder / FAISS_FILE).exists():
            try:
                # Memory-mapped: the graph's copy of the vectors stays in the page cache, not
                # in the process heap (benchmarks/README.md, "Figures behind the code"); it is
                # never written.
                flags = faiss.IO_FLAG_MMAP_IFC if mmap else 0
                index = faiss.read_index(str(folder / FAISS_FILE), flags)
            except RuntimeError as exc:
                raise IndexStateError(f"{folder / FAISS_FILE} is unreadable ({exc}); rebuild with `rag index`") from exc
            # the graph file of an approximate store is HNSW (read_index returns the concrete class)
            storage = faiss.downcast_index(cast(faiss.IndexHNSW, index).storage)
            graph_rows = None
            if (folder / GRAPH_ROWS_FILE).exists():
                try:
                    graph_rows = np.load(folder / GRAPH_ROWS_FILE)
                except (OSError, ValueError) as exc:
                    raise IndexStateError(f"cannot read {folder / GRAPH_ROWS_FILE} ({exc}); rebuild with `rag index`") from exc
                if len(graph_rows) != len(vecs) or (len(graph_rows) and not 0 <= graph_rows.min() <= graph_rows.max() < index.ntotal):
                    raise IndexStateError(f"{folder / GRAPH_ROWS_FILE} does not match {FAISS_FILE}; rebuild with `rag index`")
            if graph_rows is not None:  # a graph with masked rows: the vectors come from vectors.npy
                if index.d != vecs.shape[1] or not isinstance(storage, faiss.IndexFlat):
                    raise IndexStateError(f"{folder / FAISS_FILE} does not match {VECTORS_FILE}; rebuild with `rag index`")
                store._index = index
                store._set_graph_rows(graph_rows, index.ntotal)
                return store
            if index.ntotal != len(vecs) or index.d != vecs.shape[1] or not isinstance(storage, faiss.IndexFlat):
                raise IndexStateError(f"{folder / FAISS_FILE} does not match {VECTORS_FILE}; rebuild with `rag index`")
            # Re-score from the graph's own (mapped) copy of the vectors: the same numbers as
            # vectors.npy, and one copy in memory instead of two.
            store._vecs = faiss.rev_swig_ptr(storage.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)
            store._index = index  # owns the memory _vecs views; replaced only together with _vecs
        return store
