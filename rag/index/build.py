"""`rag index`: ingest, clean, chunk, embed (cached by content hash), write a new index atomically.

Incremental: unchanged files are not read again, unchanged documents keep their rows (see
:func:`build_index` and ``rag/index/rows.py``), and an unchanged corpus is answered by
``rag.index.freshness`` before any of this module is imported. ``_build`` lists the steps of a
build in order, one function each; ``rag.index.compat`` decides whether the live index fits.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings, get_settings
from rag.embedding.cache import EmbeddingCache, encode_cached, text_key
from rag.embedding.encoder import vector_space
from rag.errors import IndexStateError, InputError
from rag.index import compat, freshness
from rag.index.freshness import MANIFEST
from rag.index.gloss import GlossIndex, GlossPlan, plan_gloss_index
from rag.index.integrity import checksum_files, stamps_for
from rag.index.manifest import (
    READERS,
    build_lock,
    read_manifest,
    remove_unused_data,
    seal_manifest,
    write_json_atomic,
)
from rag.index.rows import NextRows, PreviousIndex, concat_parts, copy_rows, plan_rows, unchanged
from rag.index.tables import DOCUMENTS_FILE, KEY_BYTES, SENTENCE_DTYPE, write_tables
from rag.ingest.corpus import load_corpus
from rag.store.base import LexicalIndex, VectorWriter
from rag.store.bm25state import BM25State
from rag.store.factory import BuildRows, build_backend
from rag.text.normalise import Normaliser
from rag.types import Document, SkippedFile

# A build's progress, for a caller that shows it (an upload job): the stage and its counts so far.
# "read" {"files_read", "documents", "paragraphs"}; "encoding" {"to_encode", "encoded"} (chunk and
# sentence texts that go through the model, after the embedding cache); "writing"; "swapped".
Progress = Callable[[str, dict[str, int]], None]
PROGRESS_EVERY = 128  # texts encoded between two progress reports


def _no_progress(stage: str, counts: dict[str, int]) -> None:
    pass


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
    up_to_date: bool = False  # nothing had changed: nothing was done
    renewed: bool = False  # only file times had changed: the manifest's file record was renewed
    rebuilt: bool = True  # everything redone (no usable previous index, or its settings differ)
    files_read: int = 0  # files read and cleaned (the others' documents were taken over)
    documents_redone: int = 0  # documents chunked and tokenised (new or changed)
    glossed: int = 0  # paragraphs glossed into English (the others' gloss was taken over)

    def lines(self) -> list[str]:
        if self.up_to_date or self.renewed:
            why = "same bytes under new file times: file record renewed, " if self.renewed else ""
            return [f"index up to date: {self.documents} documents, {self.paragraphs} paragraphs, "
                    f"{self.chunks} chunks in {self.index_dir} ({why}{self.seconds:.2f}s)"]
        out = [
            f"indexed {self.documents} documents, {self.paragraphs} paragraphs, {self.chunks} chunks "
            f"(+{self.sentence_vectors} sentence vectors) into {self.index_dir} in {self.seconds:.1f}s",
            f"  embeddings: {self.encoded} encoded, {self.reused} reused from cache",
            f"  documents: {len(self.new_docs)} new, {len(self.changed_docs)} changed, "
            f"{len(self.deleted_docs)} deleted; "
            + ("full build" if self.rebuilt else
               f"update: {self.files_read} files read, {self.documents_redone} documents redone"),
        ]
        if not self.rebuilt:
            out.append(f"  English gloss: {self.glossed} paragraphs glossed, "
                       f"{self.paragraphs - self.glossed} taken over")
        if self.removed_by_kind:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.removed_by_kind.items()))
            out.append(f"  cleaning removed: {kinds} (see `rag index --report`)")
        for doc_id, flags in sorted(self.flags.items()):
            out.append(f"  flagged {doc_id}: {'; '.join(flags)}")
        for s in self.skipped:
            out.append(f"  skipped {s.path}: {s.reason}")
        return out


def _identity(settings: Settings, encoder: Any) -> tuple[str, str]:
    """(model id, passage precision) of the index to build, without loading the model."""
    if encoder is not None:
        return encoder.model_id, getattr(encoder, "passage_dtype", "float32")
    from rag.embedding.encoder import _model_id_for, resolve_passage_dtype
    from rag.modelid import packaged_model_id

    model_id = packaged_model_id(settings.embed_model) or _model_id_for(settings.embed_model)
    return model_id, resolve_passage_dtype(settings.embed_passage_dtype, settings.embed_device)


def build_index(
    paths: Sequence[Path],
    index_dir: Path,
    settings: Settings | None = None,
    *,
    encoder: Any = None,
    progress: bool = False,
    full: bool = False,
    on_progress: Progress | None = None,
) -> IndexSummary:
    """Build or update the index in ``index_dir`` from files/folders; atomic and incremental.

    Nothing changed (files by size, mtime and sha256; settings by build key): nothing is done.
    Otherwise only new and changed files are read and cleaned, only documents that are new or
    changed are chunked, tokenised and embedded; the rows of the others are taken over from
    the live index (vectors, row keys, BM25 term counts), BM25 statistics are recomputed over
    the whole corpus, and a new data folder is swapped in with one atomic manifest rename.
    A change of settings in the build key (model, precision, chunking, normaliser, store)
    rebuilds everything. ``full``: rebuild everything regardless (vectors still come from the
    embedding cache). ``on_progress(stage, counts)`` is told each stage and the encoder's progress
    (:data:`Progress`), on the building thread.
    """
    settings = settings or get_settings()
    report = on_progress or _no_progress
    index_dir = Path(index_dir)
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise InputError(f"{p} does not exist: give files or folders to index (default: corpus/)")
    t0 = time.perf_counter()
    summary = IndexSummary(index_dir=index_dir)
    with build_lock(index_dir):
        _stage("locked")
        try:
            old_manifest = read_manifest(index_dir)
        except IndexStateError:
            old_manifest = None  # unreadable or older format: build afresh
        for _ in range(2):  # twice only when the model, once loaded, has another id than predicted
            try:
                summary = _attempt(paths, index_dir, settings, encoder, progress, full,
                                   IndexSummary(index_dir=index_dir), old_manifest, t0, report)
                break
            except _IdentityChanged as changed:
                encoder = changed.encoder
    summary.seconds = time.perf_counter() - t0
    return summary


class _IdentityChanged(Exception):
    """The loaded encoder's model id or passage precision is not the one predicted from the settings."""

    def __init__(self, encoder: Any) -> None:
        super().__init__(encoder.model_id)
        self.encoder = encoder


def _attempt(paths: list[Path], index_dir: Path, settings: Settings, encoder: Any, progress: bool, full: bool,
             summary: IndexSummary, old_manifest: dict[str, Any] | None, t0: float,
             report: Progress = _no_progress) -> IndexSummary:
    model_id, passage_dtype = _identity(settings, encoder)
    space = vector_space(model_id, passage_dtype)
    key = compat.build_key(settings, passage_dtype=passage_dtype, model_id=model_id)
    sources = freshness.scan_sources(paths, freshness.glossary_paths(settings))
    if (not full and old_manifest is not None and freshness.matches(old_manifest, key, paths, sources)
            and freshness.data_files_present(index_dir, old_manifest)):
        summary.up_to_date = True
        counts = old_manifest.get("counts", {})
        summary.documents, summary.paragraphs = counts.get("documents", 0), counts.get("paragraphs", 0)
        summary.chunks, summary.sentence_vectors = counts.get("chunks", 0), counts.get("sentence_vectors", 0)
        summary.seconds = time.perf_counter() - t0
        return summary
    prev: PreviousIndex | None = None
    if not full and old_manifest is not None and compat.can_take_over(old_manifest, key, settings):
        try:
            prev = PreviousIndex(index_dir, old_manifest, settings, sources)
        except (IndexStateError, OSError, ValueError):
            prev = None  # damaged: build afresh
    try:
        summary = _build(paths, index_dir, settings, encoder, progress, summary, old_manifest, prev,
                         key, space, sources, report)
    finally:
        if prev is not None:
            prev.close()
    return summary


def _build(paths: list[Path], index_dir: Path, settings: Settings, encoder: Any, progress: bool,
           summary: IndexSummary, old_manifest: dict[str, Any] | None, prev: PreviousIndex | None,
           key: dict[str, Any], space: str, sources: dict[str, Any],
           report: Progress = _no_progress) -> IndexSummary:
    """The steps of a build that has something to do, in order; each step is one function below."""
    previous = _live_data_name(index_dir, old_manifest)  # read before the swap replaces it
    corpus = _read_corpus(paths, settings, prev, summary)
    _stage("read")
    report("read", {"files_read": len(set(corpus.origins)) - (prev.files_reused if prev is not None else 0),
                    "documents": len(corpus.docs), "paragraphs": len(corpus.para_texts)})
    rows, changed_docs = plan_rows(corpus.docs, prev, settings)
    if prev is not None and not changed_docs and _same_gloss(prev, corpus) and unchanged(prev, corpus.docs, rows, settings):
        return _renew(index_dir, paths, sources, corpus, prev, summary)
    new = _embed_new_rows(rows, settings, encoder, progress, space, prev, report)
    tables = _assemble(corpus.docs, rows, new, prev)
    bm25_state, new_tokens = _bm25_state(rows, prev, corpus.normaliser)
    store, bm25, chunk_vectors = _backend(settings, index_dir, corpus.docs, rows, new, tables, bm25_state,
                                          new_tokens, space, prev)
    gloss = corpus.gloss_plan.build(corpus.para_texts)
    report("writing", {})
    data_name = _write_data(index_dir, settings, paths, sources, corpus, rows, tables, new.dim,
                            (store, bm25, gloss, chunk_vectors), key, space)
    _stage("swapped")
    report("swapped", {})
    # The live folder and its predecessor stay (a reader may be between reading the manifest and
    # opening it); older ones go once no reader holds them.
    remove_unused_data(index_dir, keep={data_name, previous})
    _summarise(summary, _old_documents(index_dir, old_manifest, prev), corpus, rows, changed_docs, tables,
               new.encoded, prev)
    summary.glossed = gloss.glossed
    return summary


@dataclass
class _Corpus:
    """The documents of a build, read and cleaned (those of unchanged files taken over), and its gloss plan."""

    docs: list[Document]
    origins: list[str]  # the source file of each document
    normaliser: Normaliser
    para_texts: list[str]  # every paragraph's text, in row order
    gloss_plan: GlossPlan


def _read_corpus(paths: list[Path], settings: Settings, prev: PreviousIndex | None, summary: IndexSummary) -> _Corpus:
    """Load and clean the corpus (documents of unchanged files come from the live index) and plan the gloss."""
    origins: list[str] = []
    docs, skipped = load_corpus(paths, reuse=prev.reuse_file if prev else None, origins=origins)
    summary.skipped = list(skipped)
    docs, origins = _dedupe(docs, origins, summary)
    normaliser = Normaliser(settings.opencc_config)
    # The English gloss is corpus-wide (pairs mined from every text feed every paragraph's gloss):
    # its glossaries are read first (one that cannot be read fails the build before the encoder);
    # known paragraphs' pairs and term counts come from the live index's records.
    para_texts = [p.text for d in docs for p in d.paragraphs]
    gloss_plan = plan_gloss_index(paths, para_texts, normaliser, settings.glossary, cache_dir=settings.cache_dir,
                                  previous=prev.gloss if prev is not None else None)
    summary.skipped += [SkippedFile(*problem.split(": ", 1)) for problem in gloss_plan.report["problems"]]
    return _Corpus(docs, origins, normaliser, para_texts, gloss_plan)


def _same_gloss(prev: PreviousIndex, corpus: _Corpus) -> bool:
    """The live index's gloss was built from the same glossaries."""
    return bool(prev.manifest.get("gloss", {}).get("glossary", {}).get("digest") == corpus.gloss_plan.digest)


def _renew(index_dir: Path, paths: list[Path], sources: dict[str, Any], corpus: _Corpus, prev: PreviousIndex,
           summary: IndexSummary) -> IndexSummary:
    """Same bytes under new mtimes (a checkout, a copy): the data folder stays, only the
    manifest's record of the files is renewed."""
    manifest = {**prev.manifest, "paths": freshness.resolved_paths(paths),
                "sources": _sources_record(sources, corpus.origins)}
    write_json_atomic(index_dir / MANIFEST, seal_manifest(manifest))
    summary.rebuilt, summary.renewed = False, True
    summary.files_read = len(set(corpus.origins)) - prev.files_reused
    c = prev.manifest["counts"]
    summary.documents, summary.paragraphs = c["documents"], c["paragraphs"]
    summary.chunks, summary.sentence_vectors = c["chunks"], c["sentence_vectors"]
    summary.reused = c["chunks"] + c["sentence_vectors"]
    return summary


@dataclass
class _NewVectors:
    """The vectors of the new rows (new chunks, then new sentences) and their embedding-cache keys."""

    keys: list[bytes]
    vectors: np.ndarray  # float32 (len(keys), dim)
    dim: int
    encoded: int  # rows that had to go through the model


def _embed_new_rows(rows: NextRows, settings: Settings, encoder: Any, progress: bool, space: str,
                    prev: PreviousIndex | None, report: Progress = _no_progress) -> _NewVectors:
    """Vectors of the new rows: the embedding cache, the live index, else the model (loaded only then)."""
    new_texts = rows.new_chunk_texts + [c.text for c in rows.new_sentences]
    new_keys = [text_key(space, "passage", t) for t in new_texts]
    n_encoded = 0
    dim = int(prev.manifest["model"]["dim"]) if prev is not None else None
    new_vectors = np.zeros((0, dim or 0), dtype=np.float32)
    if new_texts or dim is None:
        cache = EmbeddingCache(settings.cache_dir / "embeddings.sqlite3")
        try:
            found = cache.get_many(new_keys)
            missing = [k for k in dict.fromkeys(new_keys) if k not in found]
            known = prev.vectors_for_keys(missing) if prev is not None and missing else {}
            if len(found) + len(known) < len(set(new_keys)) or (dim is None and not found):
                encoder = encoder or _load_encoder(settings, space)
                dim = encoder.dim
            elif dim is None:  # everything cached: the model need not load
                dim = len(next(iter(found.values())))
            _stage("encoding")
            to_encode = len(set(new_keys) - set(found) - set(known))
            done = 0
            report("encoding", {"to_encode": to_encode, "encoded": 0})

            def encode(batch: list[str]) -> np.ndarray:
                # In parts of PROGRESS_EVERY texts, each reported (the encoder batches within them).
                nonlocal done
                if not batch:
                    return encoder.encode(batch, kind="passage", show_progress=progress)
                parts = []
                for i in range(0, len(batch), PROGRESS_EVERY):
                    parts.append(encoder.encode(batch[i : i + PROGRESS_EVERY], kind="passage", show_progress=progress))
                    done += len(parts[-1])
                    report("encoding", {"to_encode": to_encode, "encoded": done})
                return np.concatenate(parts) if len(parts) > 1 else parts[0]

            new_vectors, n_encoded = encode_cached(
                new_texts, model_id=space, kind="passage", encode=encode,
                cache=cache, dim=dim, known={**found, **known}, keys=new_keys,
            )
        finally:
            cache.close()
    assert dim is not None
    return _NewVectors(new_keys, new_vectors, dim, n_encoded)


@dataclass
class _Tables:
    """The row tables of the next index (see ``rag/index/tables.py``) and what each row came from."""

    chunk_table: np.ndarray  # int32 (n, 3): paragraph row, start, end
    sentence_table: np.ndarray
    chunk_src: np.ndarray  # the live index's chunk row of each chunk row, -1 for a new one
    chunk_ids: list[str]
    chunk_docs: list[str]
    sentence_vectors: np.ndarray  # as stored (float16)
    row_keys: np.ndarray  # the embedding-cache key of every chunk row, then every sentence row


def _assemble(docs: list[Document], rows: NextRows, new: _NewVectors, prev: PreviousIndex | None) -> _Tables:
    """Chunk and sentence tables, sentence vectors and row keys: old rows copied from the live index."""
    n_new_chunks = len(rows.new_chunks)
    chunk_table = concat_parts(rows.chunk_parts, (0, 3), np.int32)
    sentence_table = concat_parts(rows.sentence_parts, (0, 3), np.int32)
    chunk_src = concat_parts(rows.chunk_src, (0,), np.int64)
    sentence_src = concat_parts(rows.sentence_src, (0,), np.int64)
    para_ids = [p.para_id for d in docs for p in d.paragraphs]
    para_doc = [d.doc_id for d in docs for _ in d.paragraphs]
    chunk_ids = [f"{para_ids[p]}@{s}" for p, s in chunk_table[:, :2].tolist()]
    chunk_docs = [para_doc[p] for p in chunk_table[:, 0].tolist()]

    sentence_vectors = np.empty((len(sentence_table), new.dim), dtype=SENTENCE_DTYPE)
    old_s = sentence_src >= 0
    if prev is not None and old_s.any():
        copy_rows(sentence_vectors, prev.index.sentence_vectors, sentence_src)
    sentence_vectors[~old_s] = new.vectors[n_new_chunks:]
    new_key_arr = np.frombuffer(b"".join(new.keys), dtype=np.uint8).reshape(-1, KEY_BYTES)
    row_keys = np.zeros((len(chunk_table) + len(sentence_table), KEY_BYTES), dtype=np.uint8)
    n_old_chunks = len(prev.index.chunk_ids) if prev is not None else 0
    for src, offset, fresh_keys in ((chunk_src, 0, new_key_arr[:n_new_chunks]),
                                    (sentence_src, len(chunk_table), new_key_arr[n_new_chunks:])):
        target = row_keys[offset : offset + len(src)]
        old = src >= 0
        if prev is not None and old.any():
            target[old] = prev.keys[src[old] + (n_old_chunks if offset else 0)]
        target[~old] = fresh_keys
    return _Tables(chunk_table, sentence_table, chunk_src, chunk_ids, chunk_docs, sentence_vectors, row_keys)


def _bm25_state(rows: NextRows, prev: PreviousIndex | None, normaliser: Normaliser) -> tuple[BM25State, list[list[str]]]:
    """BM25 term counts of every chunk row (new chunks tokenised, old rows taken over) and the new
    chunks' tokens; the statistics are recomputed over all rows."""
    base = prev.bm25 if prev is not None else BM25State.empty()
    new_tokens = normaliser.tokenise_many(rows.new_chunk_texts)
    added = base.with_rows(new_tokens)
    parts = [base.take(sel) if kind == "old" else added.take(np.arange(*sel)) for kind, sel in rows.bm25_parts]
    state = BM25State.concat(parts) if parts else BM25State.empty()
    return state, new_tokens


def _backend(settings: Settings, index_dir: Path, docs: list[Document], rows: NextRows, new: _NewVectors,
             tables: _Tables, bm25_state: BM25State, new_tokens: list[list[str]], space: str,
             prev: PreviousIndex | None) -> tuple[VectorWriter, LexicalIndex, np.ndarray | None]:
    """The store and BM25 of the next index (``rag.store.factory``), and the chunk vectors to keep."""
    config = json.dumps([compat.expected_config(settings), space, compat.FORMAT_VERSION], sort_keys=True)
    n_new_chunks = len(rows.new_chunks)
    build_rows = BuildRows(
        chunk_ids=tables.chunk_ids, chunk_docs=tables.chunk_docs, chunk_src=tables.chunk_src,
        new_chunks=rows.new_chunks, new_vectors=new.vectors[:n_new_chunks], new_tokens=new_tokens, bm25=bm25_state,
        doc_keys={d.doc_id: hashlib.sha256(f"{d.sha256}\n{config}".encode()).hexdigest()[:32] for d in docs},
    )
    return build_backend(settings, index_dir, new.dim, build_rows,
                         (prev.store, prev.data_dir) if prev is not None else None)


def _write_data(index_dir: Path, settings: Settings, paths: list[Path], sources: dict[str, Any], corpus: _Corpus,
                rows: NextRows, tables: _Tables, dim: int,
                parts: tuple[VectorWriter, LexicalIndex, GlossIndex, np.ndarray | None],
                key: dict[str, Any], space: str) -> str:
    """A new data folder, every file fsynced, then the manifest that names it swapped in with one
    atomic rename; returns the folder's name. A failure removes the folder and leaves the live index."""
    store, bm25, gloss, chunk_vectors = parts
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    data_name = f"data-{stamp}-{os.getpid()}"
    data_dir = index_dir / data_name
    data_dir.mkdir(parents=True)
    _stage("writing data")
    try:
        names = (
            write_tables(data_dir, corpus.docs, tables.chunk_table, tables.sentence_table, tables.sentence_vectors,
                         tables.row_keys, chunk_vectors=chunk_vectors)
            + store.save(data_dir)
            + bm25.save(data_dir)
            + gloss.save(data_dir)
        )
        for name in names:
            _fsync_file(data_dir / name)
        (data_dir / READERS).touch()
        manifest = {
            "format_version": compat.FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": data_name,
            **compat.expected_config(settings),
            "build_key": key,
            "model": {"name": settings.embed_model, "id": key["model_id"], "dim": dim,
                      "passage_dtype": key["passage_dtype"], "vector_space": space},
            "store": store.describe(),
            "bm25": bm25.describe(),
            "gloss": gloss.describe(),
            "paths": freshness.resolved_paths(paths),
            "sources": _sources_record(sources, corpus.origins),
            "counts": {
                "documents": len(corpus.docs),
                "paragraphs": rows.para_count,
                "chunks": len(tables.chunk_table),
                "sentence_vectors": len(tables.sentence_table),
            },
            "checksums": checksum_files(data_dir, names, stamps_for(settings)),
        }
        write_json_atomic(index_dir / MANIFEST, seal_manifest(manifest), before_replace=lambda: _stage("manifest tmp"))
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return data_name


def _summarise(summary: IndexSummary, old_docs: dict[str, str], corpus: _Corpus, rows: NextRows,
               changed_docs: list[Document], tables: _Tables, n_encoded: int, prev: PreviousIndex | None) -> None:
    """What the build did, for `rag index` to print: documents new, changed and deleted, rows reused."""
    doc_sha = {d.doc_id: d.sha256 for d in corpus.docs}
    summary.new_docs = sorted(d for d in doc_sha if d not in old_docs)
    summary.changed_docs = sorted(d for d, sha in doc_sha.items() if d in old_docs and old_docs[d] != sha)
    summary.deleted_docs = sorted(d for d in old_docs if d not in doc_sha)
    summary.rebuilt = prev is None
    summary.files_read = len(set(corpus.origins)) - (prev.files_reused if prev is not None else 0)
    summary.documents_redone = len(changed_docs)
    summary.documents = len(corpus.docs)
    summary.paragraphs = rows.para_count
    summary.chunks = len(tables.chunk_table)
    summary.sentence_vectors = len(tables.sentence_table)
    summary.encoded = n_encoded
    summary.reused = len(tables.chunk_table) + len(tables.sentence_table) - n_encoded
    for d in corpus.docs:
        for removal in d.removed:
            summary.removed_by_kind[removal.kind] = summary.removed_by_kind.get(removal.kind, 0) + 1
        if d.flags:
            summary.flags[d.doc_id] = list(d.flags)


# Test hook, internal on purpose (not a setting, so not in docs/configuration.md):
# with _RAG_TEST_BUILD_STAGES naming a file, a build appends the name of each stage it reaches
# ("locked", "read", "encoding", "writing data", "manifest tmp", "swapped"); with
# _RAG_TEST_BUILD_PAUSE naming one of them, it stops itself (SIGSTOP) there. The crash tests
# (tests/test_reliability_index.py) kill it at that exact point, on any machine's speed.
def _stage(name: str) -> None:
    log = os.environ.get("_RAG_TEST_BUILD_STAGES")
    if not log:
        return
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(name + "\n")
    if os.environ.get("_RAG_TEST_BUILD_PAUSE") == name:
        # Sent to this thread: the whole process stops before this thread's next step (sent to
        # the process, another thread of a server may take it while this one renames on).
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)


def _live_data_name(index_dir: Path, manifest: dict[str, Any] | None) -> str:
    """The data folder the replaced manifest named, even one of an older format (a server of an
    older version may still serve it, without holding it)."""
    if manifest is not None:
        return str(manifest.get("data", ""))
    try:
        raw = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
        return str(raw.get("data", "")) if isinstance(raw, dict) else ""
    except (OSError, ValueError):
        return ""


def _load_encoder(settings: Settings, space: str) -> Any:
    """The model, which must embed in ``space`` (the id and precision the build was planned for)."""
    from rag.embedding import get_encoder

    encoder = get_encoder(settings)
    if vector_space(encoder.model_id, getattr(encoder, "passage_dtype", "float32")) != space:
        raise _IdentityChanged(encoder)  # plan again with this encoder's own id
    return encoder


def _sources_record(sources: dict[str, Any], origins: list[str]) -> dict[str, Any]:
    """The manifest's record of the source files: size, mtime, sha256 and their documents' rows."""
    rows = _file_rows(origins)
    return {name: None if rec is None else {**rec, **({"docs": rows[name]} if name in rows else {})}
            for name, rec in sources.items()}


def _file_rows(origins: list[str]) -> dict[str, list[int]]:
    """Source file -> [first, end) of its documents' rows (each file's documents are consecutive)."""
    out: dict[str, list[int]] = {}
    broken: set[str] = set()
    for i, o in enumerate(origins):
        if o not in out:
            out[o] = [i, i + 1]
        elif out[o][1] == i:
            out[o][1] = i + 1
        else:
            broken.add(o)
    return {k: v for k, v in out.items() if k not in broken}


def _old_documents(index_dir: Path, manifest: dict[str, Any] | None, prev: PreviousIndex | None) -> dict[str, str]:
    """doc_id -> sha256 of the index this build replaced (empty when there was none)."""
    if prev is not None:
        return dict(zip(prev.index.documents.ids, prev.doc_sha, strict=True))
    if not manifest:
        return {}
    try:
        cols = json.loads((index_dir / manifest["data"] / DOCUMENTS_FILE).read_text(encoding="utf-8"))
        return dict(zip(cols["doc_id"], cols["sha256"], strict=True))
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _dedupe(docs: list[Document], origins: list[str], summary: IndexSummary) -> tuple[list[Document], list[str]]:
    seen: dict[str, Document] = {}
    kept: list[str] = []
    for d, o in zip(docs, origins, strict=True):
        if d.doc_id in seen:
            summary.skipped.append(SkippedFile(d.path or d.doc_id, f"duplicate doc_id {d.doc_id!r} (also {seen[d.doc_id].path})"))
            continue
        seen[d.doc_id] = d
        kept.append(o)
    return list(seen.values()), kept


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
