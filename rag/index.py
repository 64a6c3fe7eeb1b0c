"""The index folder: manifest, versioned data folder, checksums, loading and the build lock.

Layout::

    index/
      manifest.json        # written last, atomically: it names the live data folder
      data-<stamp>/        # documents.json, paragraphs.json + text blob, chunk/sentence tables,
                           # sentence vectors, row keys, the store's files, bm25/
      .lock                # held by `rag index` while it builds

A build writes a new data folder, then replaces ``manifest.json`` with one atomic rename, so
a reader sees either the old index or the new one, never half of each.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from rag.errors import IndexStateError
from rag.files import fsync_dir, sha256_file
from rag.freshness import FORMAT_VERSION, MANIFEST, MANIFEST_DIGEST, manifest_digest  # noqa: F401 (re-exported)
from rag.store.base import LexicalIndex, Store
from rag.store.factory import check_kind, open_backend
from rag.types import Chunk, Document, Paragraph, Removal

if TYPE_CHECKING:
    from rag.config import Settings

Verify = Literal["off", "stamped", "full"]  # how much of an index's files an open checks

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
LOCK = ".lock"
_DATA_NAME = re.compile(r"^data-[A-Za-z0-9._-]+$")


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Serialise builds of one index folder: a second `rag index` refuses at once."""
    index_dir.mkdir(parents=True, exist_ok=True)
    fh = open(index_dir / LOCK, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise IndexStateError(
            f"another `rag index` is already building {index_dir} (pid {holder}); wait for it to finish"
        ) from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


READERS = ".readers"  # in each data folder: readers hold a shared lock on it while they use the folder


def hold_data(data_dir: Path) -> Any:
    """A shared lock on ``data_dir`` for as long as the returned file stays open (None if it cannot).

    A build removes an old data folder only when it can lock it exclusively, so a folder some
    process still serves from is kept (and removed by a later build once it is released).
    """
    try:
        fh = open(data_dir / READERS, "rb")  # noqa: SIM115  (held open on purpose)
    except OSError:
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        fh.close()  # being removed right now: the caller's open fails on its own
        return None
    return fh


def remove_unused_data(index_dir: Path, keep: set[str]) -> list[str]:
    """Remove the data folders not in ``keep`` that no reader holds; returns those removed."""
    import shutil

    removed = []
    for child in Path(index_dir).iterdir():
        if not (child.is_dir() and child.name.startswith("data-")) or child.name in keep:
            continue
        lease = child / READERS
        try:
            fh = open(lease, "rb")  # noqa: SIM115
        except FileNotFoundError:
            fh = None  # a folder of an older version, or of a killed build: nobody holds it
        except OSError:
            continue
        try:
            if fh is not None:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a reader still uses it
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child.name)
        finally:
            if fh is not None:
                fh.close()
    return removed


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    path = Path(index_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexStateError(f"{path} is unreadable ({exc}); rebuild with `rag index`") from exc
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise IndexStateError(
            f"{path} has index format {data.get('format_version') if isinstance(data, dict) else '?'}, "
            f"this version reads {FORMAT_VERSION}; rebuild with `rag index --index {index_dir}`"
        )
    _check_manifest(path, data)
    return data


def seal_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    return {**manifest, MANIFEST_DIGEST: manifest_digest(manifest)}


def _check_manifest(path: Path, data: dict[str, Any]) -> None:
    """A tampered manifest must fail as cleanly as a tampered data file, never as a KeyError
    or by pointing the loader outside the index folder."""
    fix = f"rebuild with `rag index --index {path.parent}`"
    digest = data.get(MANIFEST_DIGEST)
    if digest is not None and digest != manifest_digest(data):  # absent in indexes built before it
        raise IndexStateError(f"{path} does not match its own checksum (edited or corrupt); {fix}")
    name = data.get("data")
    if not isinstance(name, str) or not _DATA_NAME.match(name):
        raise IndexStateError(f"{path} names no valid data folder (data: {name!r}); {fix}")
    checksums = data.get("checksums")
    if not isinstance(checksums, dict) or not checksums:
        raise IndexStateError(f"{path} has no file checksums; {fix}")
    for file, expect in checksums.items():
        rel = PurePosixPath(str(file))
        if rel.is_absolute() or ".." in rel.parts or not isinstance(expect, dict) or not {"size", "sha256"} <= set(expect):
            raise IndexStateError(f"{path} has an invalid checksum entry for {file!r}; {fix}")
    if not isinstance(data.get("store"), dict):
        raise IndexStateError(f"{path} has no vector store settings; {fix}")


STAMPS_FILE = "verified-index-files.json"  # in the cache folder: see VerifiedStamps
# A file changed within this long of being hashed could keep the same timestamps (coarse clocks,
# network filesystems): such a file is hashed again next time rather than vouched for.
RACY_SECONDS = 1.0


class VerifiedStamps:
    """Index files already hashed and found to match, keyed by path and ``stat``.

    Opening an index checks every file's size, and its sha256 unless a stamp vouches for it: the
    same path, size, mtime, ctime, inode and device as when that sha256 was computed, and the
    sha256 the manifest expects now (git skips unchanged files the same way). Any write, copy,
    replacement or ``touch`` changes ctime, which nothing but the clock sets, so an altered file
    is always hashed again; ``rag verify`` hashes everything regardless. The stamps live in the
    cache folder (``RAG_CACHE_DIR``), so read-only index folders work; when it cannot be
    written, every open hashes every file, as without stamps.
    """

    def __init__(self, path: Path | None, *, trust: bool = True) -> None:
        self.path = path
        self.trust = trust  # False: hash every file (and renew the stamps)
        self._data: dict[str, Any] = self._read() if path is not None else {}
        self._new: dict[str, Any] = {}

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _key(st: os.stat_result) -> list[int]:
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]

    def vouches(self, path: Path, st: os.stat_result, sha256: str) -> bool:
        entry = self._data.get(str(path.resolve())) if self.trust else None
        return isinstance(entry, dict) and entry.get("sha256") == sha256 and entry.get("stat") == self._key(st)

    def hash(self, path: Path) -> str:
        """sha256 of ``path``, remembered when the file did not change while (or just before) hashing."""
        before = path.stat()
        started = time.time()
        digest = sha256_file(path)
        after = path.stat()
        settled = max(after.st_mtime_ns, after.st_ctime_ns) / 1e9 < started - RACY_SECONDS
        if self.path is not None and self._key(after) == self._key(before) and settled:
            self._new[str(path.resolve())] = {"stat": self._key(after), "sha256": digest}
        return digest

    def save(self) -> None:
        """Merge new stamps into the file (atomically); stamps of files that are gone are dropped."""
        if self.path is None or not self._new:
            return
        merged = {**self._read(), **self._new}
        merged = {k: v for k, v in merged.items() if os.path.exists(k)}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, merged)
        except OSError:
            pass  # a read-only cache only costs the next open its hashing
        self._data.update(self._new)
        self._new = {}


def verify_files(
    data_dir: Path, checksums: dict[str, dict[str, Any]], *, deep: bool = True, stamps: VerifiedStamps | None = None
) -> dict[str, int]:
    """Raise naming the first file that is missing, truncated or altered.

    Returns how many files and bytes were hashed and how many a stamp vouched for.
    """
    stamps = stamps or VerifiedStamps(None)
    counts = {"hashed_files": 0, "hashed_bytes": 0, "vouched_files": 0}
    try:
        for name, expect in checksums.items():
            path = data_dir / name
            try:
                st = path.stat()
            except FileNotFoundError:
                raise IndexStateError(f"index file {path} is missing; rebuild with `rag index`") from None
            if st.st_size != expect["size"]:
                raise IndexStateError(
                    f"index file {path} has {st.st_size} bytes, the manifest says {expect['size']} "
                    "(truncated or altered); rebuild with `rag index`"
                )
            if not deep:
                continue
            if stamps.vouches(path, st, expect["sha256"]):
                counts["vouched_files"] += 1
                continue
            counts["hashed_files"] += 1
            counts["hashed_bytes"] += st.st_size
            if stamps.hash(path) != expect["sha256"]:
                raise IndexStateError(
                    f"index file {path} does not match its checksum (altered or corrupt); rebuild with `rag index`"
                )
    finally:
        stamps.save()  # the files that did match stay vouched for, even when a later one fails
    return counts


def checksum_files(data_dir: Path, names: list[str], stamps: VerifiedStamps | None = None) -> dict[str, dict[str, Any]]:
    stamps = stamps or VerifiedStamps(None)
    out = {n: {"size": (data_dir / n).stat().st_size, "sha256": stamps.hash(data_dir / n)} for n in names}
    stamps.save()
    return out


def stamps_for(settings: Settings | None = None, *, trust: bool = True) -> VerifiedStamps:
    """The stamps in the cache folder of ``settings`` (None: no stamps, every file is hashed)."""
    if settings is None:
        return VerifiedStamps(None)
    return VerifiedStamps(Path(settings.cache_dir).expanduser() / STAMPS_FILE, trust=trust)


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
        self._text = text
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


def _load_gloss(data_dir: Path, manifest: dict[str, Any]) -> Any:
    """The English gloss BM25 (``rag/gloss.py``), or None for an index built without one."""
    if "gloss" not in manifest:
        return None
    from rag.gloss import GlossIndex

    return GlossIndex.load(data_dir)


def _segments(table: np.ndarray, n_paragraphs: int) -> np.ndarray:
    """CSR offsets: the rows of paragraph ``i`` are ``offsets[i]:offsets[i + 1]``."""
    return np.searchsorted(table[:, 0], np.arange(n_paragraphs + 1), side="left").astype(np.int64)


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
        check_kind(kind, settings, self.index_dir)
        try:
            backend = open_backend(kind, self.data_dir, manifest["store"], settings, self.chunk_ids, self.chunk_vectors)
            self.store: Store = backend[0]
            self.bm25: LexicalIndex = backend[1]
        except ValueError as exc:
            raise IndexStateError(f"vector, BM25 and chunk rows disagree in {self.data_dir} ({exc}); "
                                  "rebuild with `rag index`") from exc
        if kind == "milvus" and len(self.chunk_ids) and not len(self.store):
            raise IndexStateError(
                f"Milvus collection {self.store.collection!r} at {self.store.describe()['uri']} is empty but "  # type: ignore[attr-defined]
                f"{self.data_dir} lists {len(self.chunk_ids)} rows; re-index with `rag index --index {self.index_dir}`"
            )
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
