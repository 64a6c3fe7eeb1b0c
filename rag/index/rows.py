"""The rows of the next index: taken over from the live one, or made afresh.

:class:`PreviousIndex` opens the live index to take over what is still valid (documents of
unchanged files; chunk and sentence rows, vectors, row keys and BM25 term counts of unchanged
documents); :class:`NextRows` assembles the next index's rows in document order from those runs
and from new documents; :func:`plan_rows` decides which is which. ``rag/index/build.py`` runs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.errors import IndexStateError
from rag.index import freshness
from rag.index.gloss import GLOSS_DIR
from rag.index.glossrows import GlossRows
from rag.index.loaded import LoadedIndex
from rag.index.tables import ROW_KEYS
from rag.ingest.chunking import chunk_documents, sentence_chunks
from rag.ingest.corpus import doc_id_for
from rag.profiles import profile_of_settings
from rag.store.base import VectorWriter
from rag.store.bm25state import BM25State
from rag.store.lexical import BM25_DIR
from rag.types import Chunk, Document


def embed_text(chunk: Chunk, doc: Document, settings: Settings) -> str:
    """The passage text given to the encoder (the title adds context for short chunks)."""
    if settings.embed_title and doc.title and not chunk.text.startswith(doc.title):
        return f"{doc.title}\n{chunk.text}"
    return chunk.text


class PreviousIndex:
    """The live index, opened to take over what is still valid: documents of unchanged files,
    the chunk and sentence rows (vectors, row keys, BM25 term counts) of unchanged documents,
    and the English gloss's records of known paragraphs."""

    def __init__(self, index_dir: Path, manifest: dict[str, Any], settings: Settings,
                 sources: dict[str, Any]) -> None:
        self.manifest = manifest
        self.index = LoadedIndex(index_dir, manifest, verify="stamped", settings=settings)
        self.data_dir = self.index.data_dir
        # A store that keeps its rows in the data folder (compat.can_take_over chose this index).
        self.store: VectorWriter = self.index.store
        docs = self.index.documents
        self.doc_row = docs.row
        self.doc_sha = docs._cols["sha256"]
        self.doc_title = docs._cols["title"]
        self.para_offsets = docs._offsets  # document i owns paragraph rows para_offsets[i]:[i+1]
        self.bm25 = BM25State.load(self.data_dir / BM25_DIR)
        if len(self.bm25) != len(self.index.chunk_ids):
            raise IndexStateError(f"the BM25 state in {self.data_dir} does not match its chunks")
        self.keys = np.load(self.data_dir / ROW_KEYS)
        # The English gloss's per-paragraph records (None in an index written before they were kept,
        # or when they cannot be read: the gloss is then built in full, once).
        try:
            self.gloss: GlossRows | None = GlossRows.load(self.data_dir / GLOSS_DIR)
        except IndexStateError:
            self.gloss = None
        if self.gloss is not None and len(self.gloss) != len(self.index.paragraphs):
            self.gloss = None
        self._key_row: dict[bytes, int] | None = None
        old = manifest.get("sources", {})
        # A changed metadata.json may retitle any file: then every file is read again.
        self.metadata_changed = any(
            Path(name).name == freshness.METADATA_FILE and old.get(name) != sources.get(name)
            for name in set(old) | set(sources)
        )
        self.old_sources, self.new_sources = old, sources
        self.files_reused = 0

    def reuse_file(self, path: Path, rel: Any) -> list[Document] | None:
        """The documents of an unchanged file as the live index holds them, else None (read it)."""
        name = str(path.resolve())
        was, now = self.old_sources.get(name), self.new_sources.get(name)
        if self.metadata_changed or not was or not now or was.get("sha256") != now["sha256"] or "docs" not in was:
            return None
        first, end = was["docs"]
        cols = self.index.documents._cols
        if end > len(cols["doc_id"]) or first > end:
            return None
        if not name.endswith(".jsonl") and any(cols["doc_id"][i] != doc_id_for(rel) for i in range(first, end)):
            return None  # renamed for a clash: let the load name it again
        docs = [self._document(i) for i in range(first, end)]
        self.files_reused += 1
        return docs

    def _document(self, i: int) -> Document:
        info = self.index.documents[self.index.documents.ids[i]]
        pa, pb = int(self.para_offsets[i]), int(self.para_offsets[i + 1])
        return Document(info.doc_id, info.title, info.source, info.sha256,
                        tuple(self.index.paragraphs.at(r) for r in range(pa, pb)), info.date, info.path,
                        tuple(info.removed), tuple(info.flags))

    def rows_for(self, doc: Document) -> int | None:
        """The live index's row of ``doc`` when its chunks can be taken over as they are."""
        r = self.doc_row.get(doc.doc_id)
        if r is None or self.doc_sha[r] != doc.sha256 or self.doc_title[r] != doc.title:
            return None
        if int(self.para_offsets[r + 1] - self.para_offsets[r]) != len(doc.paragraphs):
            return None
        return r

    def _rows_of_keys(self, keys: Sequence[bytes]) -> dict[bytes, int]:
        """The row of each of ``keys`` the live index holds. A few keys (the new text of an update)
        are found by their first 8 bytes with one vectorised pass; many, through a dict of all rows."""
        if self._key_row is None and len(keys) <= 4096:
            first = np.ascontiguousarray(self.keys[:, :8]).view(np.uint64).ravel()
            want = np.frombuffer(b"".join(k[:8] for k in keys), dtype=np.uint64)
            wanted = set(keys)
            found = {}
            for i in np.flatnonzero(np.isin(first, want)).tolist():
                k = self.keys[i].tobytes()
                if k in wanted:
                    found[k] = i
            return found
        if self._key_row is None:
            self._key_row = {k.tobytes(): i for i, k in enumerate(self.keys)}
        return {k: self._key_row[k] for k in keys if k in self._key_row}

    def vectors_for_keys(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """Vectors the live index holds for these row keys (a cleared cache costs nothing)."""
        rows = self._rows_of_keys(keys)
        n_chunks = len(self.index.chunk_ids)
        out: dict[bytes, np.ndarray] = {}
        chunk_rows: dict[bytes, int] = {}
        for k in keys:
            i = rows.get(k)
            if i is None:
                continue
            if i < n_chunks:
                chunk_rows[k] = i
            else:
                out[k] = np.asarray(self.index.sentence_vectors[i - n_chunks], dtype=np.float32)
        if chunk_rows:
            found = self.store.vectors_for([self.index.chunk_ids[i] for i in chunk_rows.values()])
            out.update(zip(chunk_rows, found, strict=True))
        return out

    def close(self) -> None:
        self.index.close()


@dataclass
class NextRows:
    """The rows of the next index, assembled in document order from taken-over runs and new documents."""

    para_count: int = 0
    chunk_parts: list[np.ndarray] = field(default_factory=list)  # int32 (n, 3) with new paragraph rows
    sentence_parts: list[np.ndarray] = field(default_factory=list)
    chunk_src: list[np.ndarray] = field(default_factory=list)  # old chunk row, or -1 for a new chunk
    sentence_src: list[np.ndarray] = field(default_factory=list)
    bm25_parts: list[tuple[str, Any]] = field(default_factory=list)  # ("old", rows) | ("new", (a, b))
    new_chunks: list[Chunk] = field(default_factory=list)
    new_sentences: list[Chunk] = field(default_factory=list)
    new_chunk_texts: list[str] = field(default_factory=list)

    def take(self, prev: PreviousIndex, first_doc: int, end_doc: int) -> None:
        """Old documents ``first_doc:end_doc`` (consecutive in the live index), as they are."""
        po = prev.para_offsets
        pa, pb = int(po[first_doc]), int(po[end_doc])
        shift = self.para_count - pa
        for table, offsets, parts, src in (
            (prev.index.chunk_table, prev.index.chunk_offsets, self.chunk_parts, self.chunk_src),
            (prev.index.sentence_table, prev.index.sentence_offsets, self.sentence_parts, self.sentence_src),
        ):
            ra, rb = int(offsets[pa]), int(offsets[pb])
            part = np.array(table[ra:rb], dtype=np.int32)
            part[:, 0] += shift
            parts.append(part)
            src.append(np.arange(ra, rb, dtype=np.int64))
            if table is prev.index.chunk_table:
                self.bm25_parts.append(("old", np.arange(ra, rb, dtype=np.int64)))
        self.para_count += pb - pa

    def add(self, doc: Document, settings: Settings) -> None:
        """A new or changed document: chunked here, embedded and tokenised later."""
        rows = {p.para_id: self.para_count + i for i, p in enumerate(doc.paragraphs)}
        chunks = chunk_documents([doc], settings.chunk_max_chars, settings.chunk_overlap_chars)
        sentences = [s for p in doc.paragraphs for s in sentence_chunks(p)] if profile_of_settings(settings).sentence_vectors else []
        a = len(self.new_chunks)
        for items, parts, src, bucket in ((chunks, self.chunk_parts, self.chunk_src, self.new_chunks),
                                         (sentences, self.sentence_parts, self.sentence_src, self.new_sentences)):
            parts.append(np.array([(rows[c.para_id], c.start, c.end) for c in items], dtype=np.int32).reshape(-1, 3))
            src.append(np.full(len(items), -1, dtype=np.int64))
            bucket.extend(items)
        self.new_chunk_texts.extend(embed_text(c, doc, settings) for c in chunks)
        self.bm25_parts.append(("new", (a, len(self.new_chunks))))
        self.para_count += len(doc.paragraphs)


def copy_rows(out: np.ndarray, source: np.ndarray, rows: np.ndarray) -> None:
    """``out[i] = source[rows[i]]`` wherever ``rows[i] >= 0``, run by run: an update takes over long
    runs of consecutive rows, and a slice copy is several times faster than a gather."""
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return
    kept = rows >= 0
    breaks = np.flatnonzero((kept[1:] != kept[:-1]) | (np.diff(rows) != 1)) + 1
    starts = [0, *breaks.tolist()]
    for a, b in zip(starts, [*starts[1:], len(rows)], strict=True):
        if kept[a]:
            first = int(rows[a])
            out[a:b] = source[first : first + b - a]


def concat_parts(parts: list[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(shape, dtype=dtype)


def plan_rows(docs: list[Document], prev: PreviousIndex | None, settings: Settings) -> tuple[NextRows, list[Document]]:
    """The rows of the next index: runs of unchanged documents taken over, new and changed documents
    chunked afresh; and the documents chunked afresh."""
    rows = NextRows()
    if prev is None:
        for d in docs:
            rows.add(d, settings)
        return rows, list(docs)
    run: tuple[int, int] | None = None  # a run of consecutive old documents being taken over
    changed_docs: list[Document] = []
    for d in docs:
        r = prev.rows_for(d)
        if r is not None and run is not None and r == run[1]:
            run = (run[0], r + 1)
            continue
        if run is not None:
            rows.take(prev, *run)
            run = None
        if r is not None:
            run = (r, r + 1)
        else:
            rows.add(d, settings)
            changed_docs.append(d)
    if run is not None:
        rows.take(prev, *run)
    return rows, changed_docs


def unchanged(prev: PreviousIndex, docs: list[Document], rows: NextRows, settings: Settings) -> bool:
    """Every row of the live index taken over in place, with the same document records."""
    if len(docs) != len(prev.doc_sha) or prev.manifest["store"].get("hnsw_threshold") != settings.hnsw_threshold:
        return False
    if rows.bm25_parts != [] and (len(rows.bm25_parts) != 1 or rows.bm25_parts[0][0] != "old"):
        return False
    n_chunks, n_sentences = len(prev.index.chunk_ids), len(prev.index.sentence_table)
    src_c, src_s = concat_parts(rows.chunk_src, (0,), np.int64), concat_parts(rows.sentence_src, (0,), np.int64)
    if not (np.array_equal(src_c, np.arange(n_chunks)) and np.array_equal(src_s, np.arange(n_sentences))):
        return False
    cols = prev.index.documents._cols
    return all(
        (cols["doc_id"][i], cols["title"][i], cols["source"][i], cols["date"][i], cols["sha256"][i], cols["path"][i])
        == (d.doc_id, d.title, d.source, d.date, d.sha256, d.path)
        for i, d in enumerate(docs)
    )
