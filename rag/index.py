"""The index folder: manifest, versioned data folder, checksums, loading and the build lock.

Layout::

    index/
      manifest.json        # written last, atomically: it names the live data folder
      data-<stamp>/        # documents.json, paragraphs.jsonl, chunks.jsonl, vectors, bm25/
      .lock                # held by `rag index` while it builds

A build writes a new data folder, then replaces ``manifest.json`` with one atomic rename, so
a reader sees either the old index or the new one, never half of each.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from rag.errors import IndexStateError
from rag.lexical import BM25Index
from rag.store.faiss_store import FaissStore
from rag.types import Chunk, Document, Paragraph, Removal

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
MANIFEST_DIGEST = "manifest_sha256"  # the manifest's own checksum (of every other key)
_DATA_NAME = re.compile(r"^data-[A-Za-z0-9._-]+$")


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(bufsize):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest without its own digest (canonical JSON), so an edit is detected."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_DIGEST}
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


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


def verify_files(data_dir: Path, checksums: dict[str, dict[str, Any]], *, deep: bool = True) -> None:
    """Raise naming the first file that is missing, truncated or altered."""
    for name, expect in checksums.items():
        path = data_dir / name
        if not path.exists():
            raise IndexStateError(f"index file {path} is missing; rebuild with `rag index`")
        if path.stat().st_size != expect["size"]:
            raise IndexStateError(
                f"index file {path} has {path.stat().st_size} bytes, the manifest says {expect['size']} "
                "(truncated or altered); rebuild with `rag index`"
            )
        if deep and sha256_file(path) != expect["sha256"]:
            raise IndexStateError(
                f"index file {path} does not match its checksum (altered or corrupt); rebuild with `rag index`"
            )


def checksum_files(data_dir: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    return {n: {"size": (data_dir / n).stat().st_size, "sha256": sha256_file(data_dir / n)} for n in names}


def _document_to_json(doc: Document) -> dict[str, Any]:
    return {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "source": doc.source,
        "date": doc.date,
        "sha256": doc.sha256,
        "path": doc.path,
        "paragraphs": len(doc.paragraphs),
        "removed": [{"kind": r.kind, "text": r.text, "line": r.line} for r in doc.removed],
        "flags": list(doc.flags),
    }


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


def write_data(data_dir: Path, docs: list[Document], chunks: list[Chunk]) -> list[str]:
    """Write the document, paragraph and chunk tables; returns the file names."""
    with open(data_dir / "documents.json", "w", encoding="utf-8") as fh:
        json.dump([_document_to_json(d) for d in docs], fh, ensure_ascii=False)
    with open(data_dir / "paragraphs.jsonl", "w", encoding="utf-8") as fh:
        for d in docs:
            for p in d.paragraphs:
                row = {"para_id": p.para_id, "doc_id": p.doc_id, "n": p.n, "text": p.text, "heading": p.heading}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(data_dir / "chunks.jsonl", "w", encoding="utf-8") as fh:
        for c in chunks:
            row = {"chunk_id": c.chunk_id, "para_id": c.para_id, "doc_id": c.doc_id, "start": c.start, "end": c.end}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return ["documents.json", "paragraphs.jsonl", "chunks.jsonl"]


class LoadedIndex:
    """Everything a search needs, read from one data folder."""

    def __init__(
        self, index_dir: Path, manifest: dict[str, Any], *, verify: bool = True, settings: Any = None
    ) -> None:
        self.index_dir = Path(index_dir)
        self.manifest = manifest
        self.data_dir = self.index_dir / manifest["data"]
        t0 = time.perf_counter()
        if verify:
            verify_files(self.data_dir, manifest["checksums"])
        try:
            docs = json.loads((self.data_dir / "documents.json").read_text(encoding="utf-8"))
            self.paragraphs: dict[str, Paragraph] = {}
            with open(self.data_dir / "paragraphs.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    r = json.loads(line)
                    self.paragraphs[r["para_id"]] = Paragraph(r["para_id"], r["doc_id"], r["n"], r["text"], r.get("heading"))
            self.chunks: dict[str, Chunk] = {}
            with open(self.data_dir / "chunks.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    r = json.loads(line)
                    text = self.paragraphs[r["para_id"]].text[r["start"] : r["end"]]
                    self.chunks[r["chunk_id"]] = Chunk(r["chunk_id"], r["para_id"], r["doc_id"], text, r["start"], r["end"])
        except (OSError, ValueError, KeyError) as exc:
            raise IndexStateError(f"the index in {self.data_dir} is unreadable ({exc}); rebuild with `rag index`") from exc
        by_doc: dict[str, list[str]] = {}
        for p in self.paragraphs.values():
            by_doc.setdefault(p.doc_id, []).append(p.para_id)
        self.documents: dict[str, DocumentInfo] = {}
        for d in docs:
            self.documents[d["doc_id"]] = DocumentInfo(
                d["doc_id"], d["title"], d["source"], d.get("date"), d["sha256"], d.get("path"),
                by_doc.get(d["doc_id"], []),
                [Removal(r["kind"], r["text"], r.get("line")) for r in d.get("removed", [])],
                list(d.get("flags", [])),
            )
        kind = manifest["store"].get("kind", "faiss")
        if settings is not None and settings.store != kind:
            raise IndexStateError(
                f"the index in {self.index_dir} was built with store {kind!r} but RAG_STORE is {settings.store!r}: "
                f"re-index with `rag index --index {self.index_dir}` (or set RAG_STORE={kind})"
            )
        if kind == "milvus":
            self._open_milvus(manifest, settings)
            self.load_seconds = time.perf_counter() - t0
            return
        if kind != "faiss":
            raise IndexStateError(f"the index in {self.index_dir} uses an unknown store {kind!r}; re-index with `rag index`")
        store_params = {
            k: manifest["store"][k] for k in ("hnsw_threshold", "hnsw_m", "hnsw_ef_search") if k in manifest["store"]
        }
        self.store: Any = FaissStore.load(self.data_dir, **store_params)
        self.bm25: Any = BM25Index.load(self.data_dir)
        store_ids = self.store.ids()
        if store_ids[: len(self.bm25.ids)] != self.bm25.ids or any(c not in self.chunks for c in store_ids):
            raise IndexStateError(f"vector, BM25 and chunk rows disagree in {self.data_dir}; rebuild with `rag index`")
        self.load_seconds = time.perf_counter() - t0

    def _open_milvus(self, manifest: dict[str, Any], settings: Any) -> None:
        """Vectors and BM25 in Milvus; this data folder's chunk table is the snapshot served.

        Other processes may ingest into the same collection meanwhile: rows this snapshot does
        not know are ignored until the process reloads a newer manifest.
        """
        from rag.store.milvus_store import MilvusBM25, MilvusStore

        self.store = MilvusStore.load(
            self.data_dir,
            uri=settings.milvus_uri if settings is not None else None,
            token=settings.milvus_token if settings is not None else None,
            collection=settings.milvus_collection if settings is not None else None,
        )
        ids = list(self.chunks)  # written as chunk rows, then sentence rows
        n_lexical = int(manifest.get("counts", {}).get("chunks", len(ids)))
        self.store.pin(ids)
        self.bm25 = MilvusBM25(self.store, ids=ids[:n_lexical])
        if ids and not len(self.store):
            raise IndexStateError(
                f"Milvus collection {self.store.collection!r} at {self.store.describe()['uri']} is empty but "
                f"{self.data_dir} lists {len(ids)} rows; re-index with `rag index --index {self.index_dir}`"
            )

    @classmethod
    def open(cls, index_dir: Path, *, verify: bool = True) -> LoadedIndex:
        manifest = read_manifest(Path(index_dir))
        if manifest is None:
            raise IndexStateError(
                f"no index in {index_dir}: build one with `rag index --index {index_dir} [PATH ...]`"
            )
        return cls(Path(index_dir), manifest, verify=verify)
