"""The row tables of a data folder: what each file holds, the writer, and the read-only tables
(paragraphs, chunk ids, documents) a loaded index serves from memory-mapped arrays."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rag.errors import IndexStateError
from rag.types import Chunk, Document, Paragraph, Removal

DOCUMENTS_FILE = "documents.json"  # doc_id, title, source, date, sha256, path (lists)
AUDIT_FILE = "audit.json"  # doc_id -> what cleaning removed or flagged (documents that have any)
PARAGRAPHS_FILE = "paragraphs.json"  # para_id, document row, n, heading (lists)
TEXT_FILE = "paragraph_text.bin"  # the paragraph texts, UTF-8, back to back
TEXT_OFFSETS = "paragraph_offsets.npy"  # int64 byte offsets into TEXT_FILE, one more than paragraphs
CHUNK_TABLE = "chunks.npy"  # int32 (chunks, 3): paragraph row, start, end; = store rows = BM25 rows
SENTENCE_TABLE = "sentences.npy"  # int32 (sentences, 3): paragraph row, start, end
SENTENCE_VECTORS = "sentence_vectors.npy"  # float16 (sentences, dim), exact re-scoring only
# float32 (chunks, dim): written only for a store that keeps its vectors elsewhere (Milvus), so
# candidate paragraphs are re-scored from this snapshot instead of fetching vectors per query.
CHUNK_VECTORS = "chunk_vectors.npy"
ROW_KEYS = "row_keys.npy"  # uint8 (chunks + sentences, 32): embedding-cache key of each row
SENTENCE_DTYPE = np.float16
KEY_BYTES = 32


@dataclass
class DocumentInfo:
    doc_id: str
    title: str
    source: str
    date: str | None
    sha256: str
    path: str | None
    paragraph_ids: list[str]
    removed: list[Removal] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    def to_dict(self, *, with_audit: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "date": self.date,
            "sha256": self.sha256,
            "paragraphs": len(self.paragraph_ids),
        }
        if with_audit:
            d["removed"] = [{"kind": r.kind, "text": r.text, "line": r.line} for r in self.removed]
            d["flags"] = list(self.flags)
        return d


def write_data(
    data_dir: Path,
    docs: list[Document],
    chunks: list[Chunk],
    sentences: list[Chunk],
    sentence_vectors: np.ndarray,
    row_keys: list[bytes],
    chunk_vectors: np.ndarray | None = None,
) -> list[str]:
    """Write the tables a search needs as flat arrays; returns the file names.

    Paragraph texts go into one UTF-8 blob with byte offsets, chunk and sentence rows into
    int32 ``(paragraph row, start, end)`` tables, sentence vectors into a float16 matrix: an
    index of 100k paragraphs opens by memory-mapping these, without parsing a row at a time.
    Chunks and sentences must come in paragraph order (as the chunkers emit them).
    """
    para_row = {p.para_id: i for i, p in enumerate(p for d in docs for p in d.paragraphs)}
    tables = []
    for name, rows in ((CHUNK_TABLE, chunks), (SENTENCE_TABLE, sentences)):
        table = np.array([(para_row[c.para_id], c.start, c.end) for c in rows], dtype=np.int32).reshape(-1, 3)
        if len(table) and np.any(np.diff(table[:, 0]) < 0):
            raise ValueError(f"{name}: rows are not in paragraph order")
        tables.append(table)
    keys = np.frombuffer(b"".join(row_keys), dtype=np.uint8).reshape(len(row_keys), KEY_BYTES)
    return write_tables(data_dir, docs, tables[0], tables[1], sentence_vectors, keys, chunk_vectors)


def write_tables(
    data_dir: Path,
    docs: Sequence[Document],
    chunk_table: np.ndarray,
    sentence_table: np.ndarray,
    sentence_vectors: np.ndarray,
    row_keys: np.ndarray,
    chunk_vectors: np.ndarray | None = None,
) -> list[str]:
    """:func:`write_data` from the row tables themselves: int32 ``(paragraph row, start, end)``
    for chunks and sentences, uint8 ``(rows, 32)`` row keys (what an update assembles)."""
    paragraphs = [p for d in docs for p in d.paragraphs]
    doc_row = {d.doc_id: i for i, d in enumerate(docs)}
    columns = {
        "doc_id": [d.doc_id for d in docs], "title": [d.title for d in docs], "source": [d.source for d in docs],
        "date": [d.date for d in docs], "sha256": [d.sha256 for d in docs], "path": [d.path for d in docs],
    }
    (data_dir / DOCUMENTS_FILE).write_text(json.dumps(columns, ensure_ascii=False), encoding="utf-8")
    audit = {
        d.doc_id: {"removed": [{"kind": r.kind, "text": r.text, "line": r.line} for r in d.removed], "flags": list(d.flags)}
        for d in docs if d.removed or d.flags
    }
    (data_dir / AUDIT_FILE).write_text(json.dumps(audit, ensure_ascii=False), encoding="utf-8")
    meta = {
        "para_id": [p.para_id for p in paragraphs],
        "doc": [doc_row[p.doc_id] for p in paragraphs],
        "n": [p.n for p in paragraphs],
        "heading": [p.heading for p in paragraphs],
    }
    (data_dir / PARAGRAPHS_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    blobs = [p.text.encode("utf-8") for p in paragraphs]
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    (data_dir / TEXT_FILE).write_bytes(b"".join(blobs))
    np.save(data_dir / TEXT_OFFSETS, offsets)
    for name, table in ((CHUNK_TABLE, chunk_table), (SENTENCE_TABLE, sentence_table)):
        table = np.asarray(table, dtype=np.int32).reshape(-1, 3)
        if len(table) and (np.any(np.diff(table[:, 0]) < 0) or table[:, 0].max() >= len(paragraphs)):
            raise ValueError(f"{name}: rows are not in paragraph order")
        np.save(data_dir / name, table)
    if len(sentence_vectors) != len(sentence_table) or len(row_keys) != len(chunk_table) + len(sentence_table):
        raise ValueError("sentence vectors or row keys do not match the tables")
    np.save(data_dir / SENTENCE_VECTORS, np.ascontiguousarray(sentence_vectors, dtype=SENTENCE_DTYPE))
    np.save(data_dir / ROW_KEYS, np.ascontiguousarray(row_keys, dtype=np.uint8).reshape(-1, KEY_BYTES))
    names = [DOCUMENTS_FILE, AUDIT_FILE, PARAGRAPHS_FILE, TEXT_FILE, TEXT_OFFSETS, CHUNK_TABLE, SENTENCE_TABLE,
             SENTENCE_VECTORS, ROW_KEYS]
    if chunk_vectors is not None:
        if len(chunk_vectors) != len(chunk_table):
            raise ValueError(f"{len(chunk_vectors)} chunk vectors for {len(chunk_table)} chunks")
        np.save(data_dir / CHUNK_VECTORS, np.ascontiguousarray(chunk_vectors, dtype=np.float32))
        names.append(CHUNK_VECTORS)
    return names


_V = TypeVar("_V")


class _RowTable(Mapping[str, _V]):
    """A read-only id -> record mapping over rows: ``ids`` in row order, ``row`` id -> row."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.row = {key: i for i, key in enumerate(ids)}

    def __contains__(self, key: object) -> bool:
        return key in self.row

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


class ParagraphTable(_RowTable[Paragraph]):
    """para_id -> Paragraph, decoded from the memory-mapped text blob on access."""

    def __init__(self, ids: list[str], doc_ids: list[str], n: list[int], headings: list[str | None],
                 text: np.ndarray, offsets: np.ndarray) -> None:
        super().__init__(ids)
        self._doc_ids = doc_ids
        self._n = n
        self._headings = headings
        # A plain view of the memory map: slicing a np.memmap makes a memmap object each time
        # (~30 us), which dominated reading 100k paragraphs back for an update.
        self._text = text.view(np.ndarray)
        self._offsets = offsets

    def at(self, i: int) -> Paragraph:
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        text = self._text[a:b].tobytes().decode("utf-8")
        return Paragraph(self.ids[i], self._doc_ids[i], self._n[i], text, self._headings[i])

    def __getitem__(self, pid: str) -> Paragraph:
        return self.at(self.row[pid])


class ChunkIds(Sequence[str]):
    """Chunk ids (``<para_id>@<start>``) of the chunk rows, formatted on access."""

    def __init__(self, para_ids: list[str], table: np.ndarray) -> None:
        self._para_ids = para_ids
        self._table = table
        self._row: dict[str, int] | None = None

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        p, start, _ = self._table[i]
        return f"{self._para_ids[p]}@{start}"

    def __len__(self) -> int:
        return len(self._table)

    def row(self, chunk_id: str) -> int | None:
        """The row of a chunk id, or None (built on first use: only a shared store needs it)."""
        if self._row is None:
            self._row = {c: i for i, c in enumerate(self)}
        return self._row.get(chunk_id)


class DocumentTable(_RowTable[DocumentInfo]):
    """doc_id -> DocumentInfo, built on access; the cleaning audit is read on first use."""

    def __init__(self, columns: dict[str, list[Any]], paragraph_ids: list[str], para_doc: np.ndarray,
                 audit_path: Path) -> None:
        super().__init__(columns["doc_id"])
        self._cols = columns
        self._para_ids = paragraph_ids
        # Paragraphs are stored document by document: document i owns rows offsets[i]:offsets[i+1].
        self._offsets = np.searchsorted(para_doc, np.arange(len(self.ids) + 1), side="left")
        self._audit_path = audit_path
        self._audit: dict[str, Any] | None = None

    def _audit_of(self, doc_id: str) -> dict[str, Any]:
        if self._audit is None:
            try:
                self._audit = json.loads(self._audit_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise IndexStateError(f"cannot read {self._audit_path} ({exc}); rebuild the index with `rag index`") from exc
        return self._audit.get(doc_id, {})

    def __getitem__(self, doc_id: str) -> DocumentInfo:
        i = self.row[doc_id]
        c = self._cols
        audit = self._audit_of(doc_id)
        return DocumentInfo(
            doc_id, c["title"][i], c["source"][i], c["date"][i], c["sha256"][i], c["path"][i],
            self._para_ids[int(self._offsets[i]) : int(self._offsets[i + 1])],
            [Removal(r["kind"], r["text"], r.get("line")) for r in audit.get("removed", [])],
            list(audit.get("flags", [])),
        )

    def header(self, doc_id: str) -> tuple[str, str, str | None] | None:
        """(title, source, date) of a document, or None; reads no audit (the per-hit path)."""
        i = self.row.get(doc_id)
        if i is None:
            return None
        return self._cols["title"][i], self._cols["source"][i], self._cols["date"][i]


def _segments(table: np.ndarray, n_paragraphs: int) -> np.ndarray:
    """CSR offsets: the rows of paragraph ``i`` are ``offsets[i]:offsets[i + 1]``."""
    return np.searchsorted(table[:, 0], np.arange(n_paragraphs + 1), side="left").astype(np.int64)
