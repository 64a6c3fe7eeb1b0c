"""The one place a backend is chosen: FAISS + bm25s, or Milvus (vectors and BM25 in one).

``open_backend`` gives the :class:`~rag.store.base.Store` and
:class:`~rag.store.base.LexicalIndex` of a built index (its manifest names the kind);
``build_backend`` makes them for ``rag index`` (the settings name the kind). Only this module
names the concrete classes: the rest of the package sees the Protocols of ``rag.store.base``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexStateError
from rag.store.base import LexicalIndex, Store, VectorWriter
from rag.store.bm25state import BM25State
from rag.store.faiss_store import FaissStore
from rag.store.lexical import BM25Index
from rag.types import Chunk


def open_backend(
    kind: str, data_dir: Path, store_record: dict[str, Any], settings: Any, chunk_ids: Sequence[str],
    chunk_vectors: np.ndarray | None,
) -> tuple[Store, LexicalIndex]:
    """The store and BM25 of a data folder, pinned to its chunk rows.

    ``store_record`` is the manifest's ``store`` entry; ``settings`` (may be None) override the
    search-time knobs and the Milvus address.
    """
    if kind == "milvus":
        from rag.store.milvus_store import MilvusBM25, MilvusStore

        milvus = MilvusStore.load(
            data_dir,
            uri=settings.milvus_uri if settings is not None else None,
            token=settings.milvus_token if settings is not None else None,
            collection=settings.milvus_collection if settings is not None else None,
        )
        milvus.pin(chunk_ids, chunk_vectors)
        if len(chunk_ids) and not len(milvus):
            raise IndexStateError(
                f"Milvus collection {milvus.collection!r} at {milvus.describe()['uri']} is empty but "
                f"{data_dir} lists {len(chunk_ids)} rows; re-index with `rag index --index {data_dir.parent}`"
            )
        return milvus, MilvusBM25(milvus, ids=chunk_ids)
    params = {k: store_record[k] for k in ("hnsw_threshold", "hnsw_m", "hnsw_ef_search") if k in store_record}
    if settings is not None:  # a search-time knob: the setting wins over the value at build
        params["hnsw_ef_search"] = settings.hnsw_ef_search
    faiss_store = FaissStore.load(data_dir, **params)
    # Memory-mapped: the postings are read from the page cache as questions use them
    # (less anonymous memory, same scores).
    lexical = BM25Index.load(data_dir, mmap=True)
    # The checksums vouch that these files were written together; check the rows line up.
    n = len(chunk_ids)
    if len(lexical.ids) != n or any(lexical.ids[i] != chunk_ids[i] for i in ((0, n - 1) if n else ())):
        raise ValueError(f"{len(lexical.ids)} BM25 rows for {n} chunk rows, or in another order")
    faiss_store.pin(chunk_ids)
    return faiss_store, lexical


@dataclass
class BuildRows:
    """What a build hands the backend: the chunk rows of the new index and where each comes from."""

    chunk_ids: list[str]
    chunk_docs: list[str]
    chunk_src: np.ndarray  # the previous store's row of each chunk row, -1 for a new one
    new_chunks: list[Chunk]  # the chunks with chunk_src -1, in order
    new_vectors: np.ndarray  # their vectors
    new_tokens: list[list[str]]  # their normalised tokens
    bm25: BM25State  # term counts of every chunk row
    doc_keys: dict[str, str]  # doc_id -> content key (a shared store skips unchanged documents)


def build_backend(
    settings: Any, index_dir: Path, dim: int, rows: BuildRows, previous: tuple[VectorWriter, Path] | None = None
) -> tuple[Store, LexicalIndex, np.ndarray | None]:
    """The store and BM25 of the next index, and the chunk vectors its data folder must keep
    (a snapshot, for a store that holds them elsewhere; None for FAISS).

    ``previous``: the live index's store and data folder, whose rows are taken over (a FAISS
    store only: ``rag.index.compat.can_take_over`` lets no other reach here).
    """
    if settings.store == "milvus":
        from rag.store.milvus_store import MilvusBM25, open_for

        milvus = open_for(settings, index_dir, dim)
        milvus.sync_documents(rows.doc_keys, rows.new_chunks, rows.new_vectors, rows.new_tokens)
        return milvus, MilvusBM25(milvus, ids=rows.chunk_ids), rows.new_vectors
    if previous is not None:
        store, folder = previous
        if not isinstance(store, FaissStore):
            raise IndexStateError(f"the index in {index_dir} does not keep its vectors in its data folder")
        faiss_store = store.updated(rows.chunk_src, rows.new_vectors, rows.chunk_ids, rows.chunk_docs, folder=folder,
                                    hnsw_threshold=settings.hnsw_threshold, hnsw_ef_search=settings.hnsw_ef_search)
    else:
        faiss_store = FaissStore(dim, hnsw_threshold=settings.hnsw_threshold, hnsw_ef_search=settings.hnsw_ef_search)
        faiss_store.add(rows.chunk_ids, rows.chunk_docs, rows.new_vectors)
    return faiss_store, BM25Index.from_state(rows.chunk_ids, rows.bm25), None
