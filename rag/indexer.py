"""`rag index`: ingest, clean, chunk, embed (cached by content hash), write a new index atomically."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rag.chunking import chunk_documents, sentence_chunks
from rag.config import Settings, get_settings
from rag.embedcache import EmbeddingCache, encode_cached, text_key
from rag.errors import IndexStateError, InputError
from rag.gloss import build_gloss_index
from rag.index import (
    FORMAT_VERSION,
    MANIFEST,
    LoadedIndex,
    build_lock,
    checksum_files,
    read_manifest,
    seal_manifest,
    stamps_for,
    write_data,
    write_json_atomic,
)
from rag.ingest import load_corpus
from rag.lexical import BM25Index
from rag.normalise import Normaliser
from rag.store.faiss_store import FaissStore
from rag.types import Chunk, Document, SkippedFile


@dataclass
class IndexSummary:
    index_dir: Path
    documents: int = 0
    paragraphs: int = 0
    chunks: int = 0
    sentence_vectors: int = 0
    encoded: int = 0  # chunks that had to go through the model
    reused: int = 0  # chunks whose vectors came from the cache or the previous index
    new_docs: list[str] = field(default_factory=list)
    changed_docs: list[str] = field(default_factory=list)
    deleted_docs: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    removed_by_kind: dict[str, int] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"indexed {self.documents} documents, {self.paragraphs} paragraphs, {self.chunks} chunks "
            f"(+{self.sentence_vectors} sentence vectors) into {self.index_dir} in {self.seconds:.1f}s",
            f"  embeddings: {self.encoded} encoded, {self.reused} reused from cache",
            f"  documents: {len(self.new_docs)} new, {len(self.changed_docs)} changed, "
            f"{len(self.deleted_docs)} deleted",
        ]
        if self.removed_by_kind:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.removed_by_kind.items()))
            out.append(f"  cleaning removed: {kinds} (see `rag index --report`)")
        for doc_id, flags in sorted(self.flags.items()):
            out.append(f"  flagged {doc_id}: {'; '.join(flags)}")
        for s in self.skipped:
            out.append(f"  skipped {s.path}: {s.reason}")
        return out


def embed_text(chunk: Chunk, doc: Document, settings: Settings) -> str:
    """The passage text given to the encoder (the title adds context for short chunks)."""
    if settings.embed_title and doc.title and not chunk.text.startswith(doc.title):
        return f"{doc.title}\n{chunk.text}"
    return chunk.text


def index_config(settings: Settings, normaliser: Normaliser) -> dict[str, Any]:
    """The settings an index is built for; a loaded index must match them."""
    return {
        "model": settings.embed_model,
        "normaliser": normaliser.config(),
        "chunking": {
            "max_chars": settings.chunk_max_chars,
            "overlap_chars": settings.chunk_overlap_chars,
            "embed_title": settings.embed_title,
            "sentence_vectors": settings.sentence_vectors,
        },
    }


def _previous_vectors(
    index_dir: Path, manifest: dict[str, Any] | None, model_id: str
) -> tuple[dict[bytes, np.ndarray], dict[bytes, np.ndarray]]:
    """Vectors of the previous index keyed like the cache, so a cleared cache costs nothing.

    Returns (exact, approximate): chunk vectors as stored (float32: the FAISS store's, or the
    snapshot copy kept beside a shared store), and sentence vectors, stored as float16, which the cache's
    exact float32 vectors take precedence over.
    """
    if not manifest or manifest.get("model", {}).get("id") != model_id:
        return {}, {}
    try:
        old = LoadedIndex(index_dir, manifest, verify=False)
        keys = old.row_keys()
    except (IndexStateError, OSError, ValueError):
        return {}, {}
    n_chunks = len(old.chunk_ids)
    if len(keys) != n_chunks + len(old.sentence_vectors):
        return {}, {}
    exact: dict[bytes, np.ndarray] = {}
    if manifest.get("store", {}).get("kind", "faiss") == "faiss":
        exact = dict(zip(keys[:n_chunks], np.asarray(old.store.vectors_at(np.arange(n_chunks))), strict=True))
    elif old.chunk_vectors is not None:
        exact = dict(zip(keys[:n_chunks], np.asarray(old.chunk_vectors, dtype=np.float32), strict=True))
    approximate = dict(zip(keys[n_chunks:], np.asarray(old.sentence_vectors, dtype=np.float32), strict=True))
    return exact, approximate


def build_index(
    paths: Sequence[Path],
    index_dir: Path,
    settings: Settings | None = None,
    *,
    encoder: Any = None,
    progress: bool = False,
) -> IndexSummary:
    """Build or update the index in ``index_dir`` from files/folders; atomic and incremental."""
    settings = settings or get_settings()
    index_dir = Path(index_dir)
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise InputError(f"{p} does not exist: give files or folders to index (default: corpus/)")
    t0 = time.perf_counter()
    summary = IndexSummary(index_dir=index_dir)
    with build_lock(index_dir):
        try:
            old_manifest = read_manifest(index_dir)
        except IndexStateError:
            old_manifest = None  # unreadable or older format: build afresh
        docs, skipped = load_corpus(paths)
        summary.skipped = list(skipped)
        docs = _dedupe(docs, summary)
        normaliser = Normaliser(settings.opencc_config)
        # Before the encoder: a glossary that cannot be read fails the build at once.
        gloss = build_gloss_index(paths, [p for d in docs for p in d.paragraphs], normaliser, settings.glossary)
        summary.skipped += [SkippedFile(*problem.split(": ", 1)) for problem in gloss.report["problems"]]
        chunks = chunk_documents(docs, settings.chunk_max_chars, settings.chunk_overlap_chars)
        sentences = (
            [s for d in docs for p in d.paragraphs for s in sentence_chunks(p)] if settings.sentence_vectors else []
        )
        doc_by_id = {d.doc_id: d for d in docs}
        texts = [embed_text(c, doc_by_id[c.doc_id], settings) for c in chunks]
        sentence_texts = [c.text for c in sentences]

        if encoder is None:
            from rag.embedding import get_encoder

            encoder = get_encoder(settings.embed_model, cache_dir=settings.cache_dir, device=settings.embed_device,
                                  backend=settings.embed_backend, query_dtype=settings.embed_query_dtype)
        exact, approximate = _previous_vectors(index_dir, old_manifest, encoder.model_id)
        row_keys = [text_key(encoder.model_id, "passage", t) for t in texts + sentence_texts]
        cache = EmbeddingCache(settings.cache_dir / "embeddings.sqlite3")
        try:
            # Vectors of every row (chunks then sentences): previous index, cache, else the model.
            row_vectors, n_encoded = encode_cached(
                texts + sentence_texts,
                model_id=encoder.model_id,
                kind="passage",
                encode=lambda batch: encoder.encode(batch, kind="passage", show_progress=progress),
                cache=cache,
                dim=encoder.dim,
                known=exact,
                fallback=approximate,
                keys=row_keys,
            )
        finally:
            cache.close()
        vectors, sentence_vectors = row_vectors[: len(chunks)], row_vectors[len(chunks) :]
        store: Any
        bm25: Any
        if settings.store == "milvus":
            store, bm25 = _ingest_milvus(settings, index_dir, encoder, docs, chunks, texts, vectors, normaliser)
        else:
            store = FaissStore(encoder.dim, hnsw_threshold=settings.hnsw_threshold,
                               hnsw_ef_search=settings.hnsw_ef_search)
            store.add([c.chunk_id for c in chunks], [c.doc_id for c in chunks], vectors)
            bm25 = BM25Index.build([c.chunk_id for c in chunks], normaliser.tokenise_many(texts))

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        data_name = f"data-{stamp}-{os.getpid()}"
        data_dir = index_dir / data_name
        data_dir.mkdir(parents=True)
        try:
            names = (
                write_data(data_dir, docs, chunks, sentences, sentence_vectors, row_keys,
                           chunk_vectors=vectors if settings.store != "faiss" else None)
                + store.save(data_dir)
                + bm25.save(data_dir)
                + gloss.save(data_dir)
            )
            for name in names:
                _fsync_file(data_dir / name)
            manifest = {
                "format_version": FORMAT_VERSION,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "data": data_name,
                **index_config(settings, normaliser),
                "model": {"name": settings.embed_model, "id": encoder.model_id, "dim": encoder.dim},
                "store": store.describe(),
                "bm25": bm25.describe(),
                "gloss": gloss.describe(),
                "files": {d.path or d.doc_id: {"sha256": d.sha256, "doc_id": d.doc_id} for d in docs},
                "documents": {d.doc_id: d.sha256 for d in docs},
                "counts": {
                    "documents": len(docs),
                    "paragraphs": sum(len(d.paragraphs) for d in docs),
                    "chunks": len(chunks),
                    "sentence_vectors": len(sentences),
                },
                "checksums": checksum_files(data_dir, names, stamps_for(settings)),
            }
            write_json_atomic(index_dir / MANIFEST, seal_manifest(manifest))
        except BaseException:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise
        _remove_old_data(index_dir, keep={data_name, (old_manifest or {}).get("data", "")})

    old_docs: dict[str, str] = (old_manifest or {}).get("documents", {})
    summary.new_docs = sorted(d for d in doc_by_id if d not in old_docs)
    summary.changed_docs = sorted(d for d, doc in doc_by_id.items() if d in old_docs and old_docs[d] != doc.sha256)
    summary.deleted_docs = sorted(d for d in old_docs if d not in doc_by_id)
    summary.documents = len(docs)
    summary.paragraphs = sum(len(d.paragraphs) for d in docs)
    summary.chunks = len(chunks)
    summary.sentence_vectors = len(sentences)
    summary.encoded = n_encoded
    summary.reused = len(chunks) + len(sentences) - n_encoded
    for d in docs:
        for r in d.removed:
            summary.removed_by_kind[r.kind] = summary.removed_by_kind.get(r.kind, 0) + 1
        if d.flags:
            summary.flags[d.doc_id] = list(d.flags)
    summary.seconds = time.perf_counter() - t0
    return summary


def _ingest_milvus(
    settings: Settings,
    index_dir: Path,
    encoder: Any,
    docs: list[Document],
    chunks: list[Chunk],
    texts: list[str],
    vectors: np.ndarray,
    normaliser: Normaliser,
) -> tuple[Any, Any]:
    """Ingestion by document into Milvus: rows of new or changed documents are written (upserts),
    rows of changed or vanished documents removed; unchanged documents are not touched."""
    import hashlib
    import json

    from rag.store.milvus_store import MilvusBM25, lexical_text, open_for

    store = open_for(settings, index_dir, encoder.dim)
    config = json.dumps([index_config(settings, normaliser), encoder.model_id, FORMAT_VERSION], sort_keys=True)
    key = {d.doc_id: hashlib.sha256(f"{d.sha256}\n{config}".encode()).hexdigest()[:32] for d in docs}
    held = store.document_keys()
    stale = [d for d, k in held.items() if key.get(d) != k]
    if stale:
        store.delete_documents(stale)
    todo = {d for d in key if held.get(d) != key[d]}
    pick = [i for i, c in enumerate(chunks) if c.doc_id in todo]
    if pick:
        tokens = normaliser.tokenise_many([texts[i] for i in pick])
        store.add(
            [chunks[i].chunk_id for i in pick],
            [chunks[i].doc_id for i in pick],
            vectors[pick],
            texts=[lexical_text(t) for t in tokens],
            para_ids=[chunks[i].para_id for i in pick],
            doc_keys=[key[chunks[i].doc_id] for i in pick],
        )
    return store, MilvusBM25(store, ids=[c.chunk_id for c in chunks])


def _dedupe(docs: list[Document], summary: IndexSummary) -> list[Document]:
    seen: dict[str, Document] = {}
    for d in docs:
        if d.doc_id in seen:
            summary.skipped.append(SkippedFile(d.path or d.doc_id, f"duplicate doc_id {d.doc_id!r} (also {seen[d.doc_id].path})"))
            continue
        seen[d.doc_id] = d
    return list(seen.values())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _remove_old_data(index_dir: Path, keep: set[str]) -> None:
    """Drop data folders older than the live one and its predecessor (a reader may still use that)."""
    for child in index_dir.iterdir():
        if child.is_dir() and child.name.startswith("data-") and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
