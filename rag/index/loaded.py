"""Everything a search needs, read from one data folder: :class:`LoadedIndex`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rag.errors import IndexStateError
from rag.index.compat import require_store
from rag.store.base import LexicalIndex, Store
from rag.store.factory import open_backend

if TYPE_CHECKING:
    from rag.config import Settings
from rag.index.integrity import stamps_for, verify_files
from rag.index.manifest import hold_data, read_manifest
from rag.index.tables import (
    AUDIT_FILE,
    CHUNK_TABLE,
    CHUNK_VECTORS,
    DOCUMENTS_FILE,
    PARAGRAPHS_FILE,
    ROW_KEYS,
    SENTENCE_TABLE,
    SENTENCE_VECTORS,
    TEXT_FILE,
    TEXT_OFFSETS,
    ChunkIds,
    DocumentTable,
    ParagraphTable,
    _segments,
)

Verify = Literal["off", "stamped", "full"]  # how much of an index's files an open checks


def _load_gloss(data_dir: Path, manifest: dict[str, Any]) -> Any:
    """The English gloss BM25 (``rag/index/gloss.py``), or None for an index built without one."""
    if "gloss" not in manifest:
        return None
    from rag.index.gloss import GlossIndex

    return GlossIndex.load(data_dir)


class LoadedIndex:
    """Everything a search needs, read from one data folder.

    Rows are integers: paragraph ``i`` owns chunk rows ``chunk_offsets[i]:chunk_offsets[i+1]``
    (the store's rows, in the same order, and the BM25 rows) and sentence rows
    ``sentence_offsets[i]:sentence_offsets[i+1]`` (``sentence_vectors``, memory-mapped).
    """

    def __init__(
        self, index_dir: Path, manifest: dict[str, Any], *, verify: Verify = "stamped", settings: Settings | None = None
    ) -> None:
        """``verify``: "stamped" checks every file's size and hashes those no stamp vouches for
        (see :class:`VerifiedStamps`), "full" hashes every file (``rag verify``), "off" checks
        nothing (a read-only look at an index just built)."""
        if verify not in ("off", "stamped", "full"):
            raise ValueError(f"verify must be 'off', 'stamped' or 'full', got {verify!r}")
        self.index_dir = Path(index_dir)
        self.manifest = manifest
        self.data_dir = self.index_dir / manifest["data"]
        t0 = time.perf_counter()
        self._lease = hold_data(self.data_dir)  # released when this object is closed or collected
        self.verified: dict[str, int] = {}
        if verify != "off":
            stamps = stamps_for(settings, trust=verify != "full")
            self.verified = verify_files(self.data_dir, manifest["checksums"], stamps=stamps)
        current = self.data_dir / DOCUMENTS_FILE
        try:
            columns = json.loads(current.read_text(encoding="utf-8"))
            doc_ids = columns["doc_id"]
            current = self.data_dir / PARAGRAPHS_FILE
            meta = json.loads(current.read_text(encoding="utf-8"))
            para_doc = np.asarray(meta["doc"], dtype=np.int64)
            current = self.data_dir / TEXT_FILE
            text = np.memmap(current, dtype=np.uint8, mode="r") if current.stat().st_size else np.zeros(0, np.uint8)
            current = self.data_dir / TEXT_OFFSETS
            offsets = np.load(current)
            para_docs = [doc_ids[i] for i in para_doc.tolist()]
            self.paragraphs = ParagraphTable(meta["para_id"], para_docs, meta["n"], meta["heading"], text, offsets)
            current = self.data_dir / CHUNK_TABLE
            self.chunk_table = np.load(current)
            current = self.data_dir / SENTENCE_TABLE
            self.sentence_table = np.load(current)
            current = self.data_dir / SENTENCE_VECTORS
            self.sentence_vectors = np.load(current, mmap_mode="r")
            current = self.data_dir / CHUNK_VECTORS
            self.chunk_vectors: np.ndarray | None = np.load(current, mmap_mode="r") if current.exists() else None
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise IndexStateError(f"cannot read {current} ({exc}); rebuild the index with `rag index`") from exc
        n_para = len(self.paragraphs)
        if (
            len(offsets) != n_para + 1
            or len(self.sentence_vectors) != len(self.sentence_table)
            or (self.chunk_vectors is not None and len(self.chunk_vectors) != len(self.chunk_table))
            or (n_para and np.any(np.diff(para_doc) < 0))
            or any(t.ndim != 2 or t.shape[1] != 3 or (len(t) and t[:, 0].max() >= n_para) for t in (self.chunk_table, self.sentence_table))
        ):
            raise IndexStateError(f"the tables in {self.data_dir} disagree; rebuild the index with `rag index`")
        self.chunk_offsets = _segments(self.chunk_table, n_para)
        self.sentence_offsets = _segments(self.sentence_table, n_para)
        self.chunk_ids = ChunkIds(self.paragraphs.ids, self.chunk_table)
        self.documents = DocumentTable(columns, self.paragraphs.ids, para_doc, self.data_dir / AUDIT_FILE)
        self.gloss = _load_gloss(self.data_dir, manifest)
        kind = manifest["store"].get("kind", "faiss")
        require_store(kind, settings, self.index_dir)
        try:
            backend = open_backend(kind, self.data_dir, manifest["store"], settings, self.chunk_ids, self.chunk_vectors)
            self.store: Store = backend[0]
            self.bm25: LexicalIndex = backend[1]
        except ValueError as exc:
            raise IndexStateError(f"vector, BM25 and chunk rows disagree in {self.data_dir} ({exc}); "
                                  "rebuild with `rag index`") from exc
        self.load_seconds = time.perf_counter() - t0

    def close(self) -> None:
        """Release this index's hold on its data folder (a later build may then remove it)."""
        if self._lease is not None:
            self._lease.close()
            self._lease = None

    def sentence_span(self, row: int) -> tuple[int, int]:
        _, start, end = self.sentence_table[row]
        return int(start), int(end)

    def row_keys(self) -> list[bytes]:
        """The embedding-cache key of every vector row: chunk rows, then sentence rows."""
        keys = np.load(self.data_dir / ROW_KEYS)
        return [k.tobytes() for k in keys]

    @classmethod
    def open(cls, index_dir: Path, *, verify: Verify = "stamped", settings: Settings | None = None) -> LoadedIndex:
        manifest = read_manifest(Path(index_dir))
        if manifest is None:
            raise IndexStateError(
                f"no index in {index_dir}: build one with `rag index --index {index_dir} [PATH ...]`"
            )
        return cls(Path(index_dir), manifest, verify=verify, settings=settings)
