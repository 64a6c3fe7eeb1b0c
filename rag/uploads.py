"""Documents uploaded into a collection, and removed from it: checked, staged, then indexed by
a job, one writer per collection.

An upload is checked whole before anything changes: every file's name (a bare name, no path
parts), type, size (``RAG_MAX_UPLOAD_MB``) and content (read by the same loader ``rag index``
uses, so its reasons are the ones reported: undecodable text, a PDF with no text layer, a corrupt
file, a ``.docx`` that would unpack past its limit). A bad file fails the request with a 4xx and
nothing is stored. The files are staged under the collection's folder, then a job moves them into
``sources/`` and updates the index with :func:`rag.index.build.build_index` (incremental, atomic
swap; readers keep the live index until then). A failed build puts ``sources/`` back as it was;
a server killed mid-job does the same when it starts again (``.pending/<job>/journal.json``),
unless the new index had already been swapped in.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

from rag.collections import DEFAULT, Collections, IndexHolder, check_name
from rag.config import Settings
from rag.errors import (
    ConflictError,
    IngestError,
    InputError,
    NotFoundError,
    RagError,
    StorageFullError,
    UnreadableFileError,
    UnsupportedTypeError,
    UploadTooLargeError,
)
from rag.index.freshness import read_manifest_quick
from rag.ingest.corpus import SUPPORTED

log = logging.getLogger("rag.uploads")

STAGING, PENDING, JOURNAL = ".staging", ".pending", "journal.json"
MAX_NAME = 200
KEEP_JOBS = 500  # finished jobs remembered (in memory: a restart forgets them)
_BLOCK = 1 << 20
_FULL = {errno.ENOSPC, errno.EDQUOT}


# -- checks ------------------------------------------------------------------------------------


def check_file_name(raw: Any) -> str:
    """A bare file name (``report.pdf``): no folders, no drive, nothing hidden, no control
    characters; it becomes a file of the collection's ``sources/`` folder."""
    if not isinstance(raw, str) or not raw.strip():
        raise InputError("every uploaded file needs a file name (report.pdf)")
    name = raw.strip()
    shown = repr(name)[:120]
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise InputError(f"file name {shown} has control characters: rename the file")
    if ("/" in name or "\\" in name or PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive
            or name in (".", "..")):
        raise InputError(f"file name {shown} has path parts: send the bare file name (report.pdf), no folders")
    if name.startswith("."):
        raise InputError(f"file name {shown} starts with '.': hidden files are not indexed; rename it")
    if len(name) > MAX_NAME or len(name.encode("utf-8")) > 255:
        raise InputError(f"file name {shown} is longer than {MAX_NAME} characters: rename it")
    return name


def check_file_type(name: str) -> None:
    ext = PurePosixPath(name).suffix.lower()
    if ext not in SUPPORTED:
        raise UnsupportedTypeError(f"{name}: unsupported file type {ext or '(none)'!r}; supported: {', '.join(SUPPORTED)}")


def check_size(name: str, size: int | None, settings: Settings) -> None:
    limit = settings.max_upload_mb * 2**20
    if size is not None and size > limit:
        raise UploadTooLargeError(f"{name}: too large ({size / 2**20:.1f} MB > {settings.max_upload_mb} MB, "
                                  "RAG_MAX_UPLOAD_MB); split it")
    if size == 0:
        raise UnreadableFileError(f"{name}: empty file")


def too_many_files(settings: Settings) -> UploadTooLargeError:
    return UploadTooLargeError(f"at most {settings.max_upload_files} files per upload (RAG_MAX_UPLOAD_FILES)")


def check_files(files: Sequence[tuple[Any, int | None]], settings: Settings) -> list[str]:
    """The names of an upload's files, given as ``(name, size)``: each a bare name of a
    supported type within the size limit, each sent once, at most ``RAG_MAX_UPLOAD_FILES``."""
    if len(files) > settings.max_upload_files:
        raise too_many_files(settings)
    names: list[str] = []
    for raw, size in files:
        name = check_file_name(raw)
        check_file_type(name)
        check_size(name, size, settings)
        if name in names:
            raise InputError(f"{name} is sent twice in one upload: send each file once")
        names.append(name)
    return names


def copy_into(src: IO[bytes], dest: Path, limit: int, name: str) -> int:
    """Copy an uploaded file to ``dest`` (fsynced), refusing one past ``limit`` bytes; the size."""
    size = 0
    with open(dest, "wb") as out:
        while block := src.read(_BLOCK):
            size += len(block)
            if size > limit:
                raise UploadTooLargeError(f"{name}: too large (> {limit // 2**20} MB, RAG_MAX_UPLOAD_MB); split it")
            write_block(out, block)
        out.flush()
        os.fsync(out.fileno())
    return size


def write_block(out: IO[bytes], block: bytes) -> None:
    """One write of an upload to disk (its own function: the full-disk test replaces it)."""
    out.write(block)


def read_check(path: Path, name: str) -> tuple[list[str], int]:
    """Read a staged file with the loader ``rag index`` uses: (doc_ids, paragraphs), or the
    loader's reason as a 422."""
    from rag.ingest.corpus import load_file

    try:
        docs = load_file(path, path.parent)
    except IngestError as exc:
        raise UnreadableFileError(str(exc)) from None
    except Exception as exc:  # a loader bug or a library's odd error on a hostile file: still the caller's file
        raise UnreadableFileError(f"{name}: unreadable ({type(exc).__name__}: {exc})") from None
    return [d.doc_id for d in docs], sum(len(d.paragraphs) for d in docs)


def storage_error(exc: OSError, where: Path) -> Exception:
    """A full disk as the 507 that says so; any other OSError as itself (a 500 in the log)."""
    if exc.errno in _FULL:
        return StorageFullError(f"the disk is full (or over quota) under {where}: nothing was stored; free space "
                                "and upload again")
    return exc


def check_writable(name: str) -> str:
    """A collection that takes uploads: any but ``default`` (which `rag index` builds)."""
    name = check_name(name)
    if name == DEFAULT:
        raise ConflictError("the default collection is built by `rag index` from its corpus folder; upload into "
                            "a collection of your own, e.g. POST /api/collections/my-docs/documents")
    return name


# -- jobs --------------------------------------------------------------------------------------


@dataclass
class Job:
    """One change to a collection: an upload (files in) or a delete (a document's file out)."""

    id: str
    kind: str  # "upload" | "delete"
    collection: str
    files: list[dict[str, Any]]
    status: str = "queued"  # queued | running | done | failed
    stage: str = "queued"
    progress: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    def to_dict(self) -> dict[str, Any]:
        p = self.progress
        return {
            "job_id": self.id, "kind": self.kind, "collection": self.collection, "status": self.status,
            "stage": self.stage, "files": self.files,
            "progress": {"files_total": len(self.files), "files_read": p.get("files_read", 0),
                         "paragraphs": p.get("paragraphs", 0), "to_encode": p.get("to_encode", 0),
                         "encoded": p.get("encoded", 0)},
            "error": self.error, "result": self.result,
            "created": _iso(self.created), "started": _iso(self.started), "finished": _iso(self.finished),
        }


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


Staged = tuple[str, Path, dict[str, Any]]  # (file name, staged file, what the loader read in it)


@dataclass
class _Change:
    name: str  # file name in sources/
    staged: Path | None  # the new bytes; None: the file is removed


class Jobs:
    """The jobs of a server and one writer thread per collection (a second job waits its turn)."""

    def __init__(self, collections: Collections, settings: Settings) -> None:
        self.collections = collections
        self.settings = settings
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, queue.Queue[tuple[Job, list[_Change]]]] = {}
        self._lock = threading.Lock()

    # -- asking ---------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r} (jobs are kept in memory: a restarted server forgets them)")
        return job

    def recent(self, collection: str | None = None) -> list[Job]:
        jobs = [j for j in list(self._jobs.values()) if collection is None or j.collection == collection]
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    def busy(self, collection: str) -> bool:
        return any(j.collection == collection and j.status in ("queued", "running") for j in list(self._jobs.values()))

    # -- submitting -----------------------------------------------------------------------
    def writable(self, name: str, *, create: bool) -> IndexHolder:
        check_writable(name)
        holder = self.collections.holder(name, create=create)
        assert holder.sources_dir is not None
        return holder

    def stage(self, name: str) -> tuple[str, Path]:
        """A new job id and its staging folder under the collection's folder (same disk as sources/)."""
        job_id = uuid.uuid4().hex[:16]
        folder = self.collections.folder(name) / STAGING / job_id
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise storage_error(exc, folder) from None
        return job_id, folder

    def stage_files(self, name: str, files: Sequence[tuple[str, IO[bytes]]]) -> tuple[str, list[Staged]]:
        """Copy each (checked) file to a new staging folder and read it with the loader: the job
        id and what :meth:`upload` queues. Any failure removes the staging folder and is raised."""
        limit = self.settings.max_upload_mb * 2**20
        job_id, folder = self.stage(name)
        staged: list[Staged] = []
        try:
            for file_name, src in files:
                dest = folder / file_name
                try:
                    size = copy_into(src, dest, limit, file_name)
                except OSError as exc:
                    raise storage_error(exc, folder) from None
                doc_ids, paragraphs = read_check(dest, file_name)
                staged.append((file_name, dest, {"bytes": size, "doc_ids": doc_ids, "paragraphs": paragraphs}))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return job_id, staged

    def upload(self, job_id: str, name: str, staged: list[Staged]) -> Job:
        """Queue the staged files (already checked) for the collection's writer."""
        holder = self.writable(name, create=True)
        assert holder.sources_dir is not None
        files = [{**info, "name": n, "replaces": (holder.sources_dir / n).exists()} for n, _, info in staged]
        job = Job(job_id, "upload", name, files)
        return self._submit(job, [_Change(n, p) for n, p, _ in staged])

    def deletion(self, name: str, doc_id: str) -> tuple[str, list[str]]:
        """What deleting ``doc_id`` removes: the file that holds it, and every document of that file."""
        holder = self.writable(name, create=False)
        assert holder.sources_dir is not None
        service = holder.get()
        info = service.document(doc_id)  # 404 when unknown
        file = check_file_name(info.path or "")
        if not (holder.sources_dir / file).exists():
            raise NotFoundError(f"document {doc_id!r} has no file {file!r} in the collection's sources "
                                "(already deleted? GET /api/jobs lists the pending jobs)")
        return file, sorted(d.doc_id for d in service.documents() if d.path == info.path)

    def delete(self, name: str, doc_id: str) -> Job:
        """Queue the removal of the file that holds ``doc_id`` (all of that file's documents go)."""
        file, gone = self.deletion(name, doc_id)
        job = Job(uuid.uuid4().hex[:16], "delete", name, [{"name": file, "doc_ids": gone}])
        return self._submit(job, [_Change(file, None)])

    def _submit(self, job: Job, changes: list[_Change]) -> Job:
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
            q = self._queues.get(job.collection)
            if q is None:
                q = self._queues[job.collection] = queue.Queue()
                threading.Thread(target=self._writer, args=(q,), name=f"rag-writer-{job.collection}",
                                 daemon=True).start()
        q.put((job, changes))
        return job

    def _forget_old(self) -> None:
        done = [j for j in self._jobs.values() if j.status in ("done", "failed")]
        for j in sorted(done, key=lambda j: j.created)[: max(0, len(done) - KEEP_JOBS)]:
            del self._jobs[j.id]

    # -- the writer -----------------------------------------------------------------------
    def _writer(self, q: queue.Queue[tuple[Job, list[_Change]]]) -> None:
        while True:
            job, changes = q.get()
            job.status, job.stage, job.started = "running", "storing", time.time()
            try:
                self._run(job, changes)
                job.status, job.stage = "done", "done"
            except Exception as exc:
                job.status, job.stage = "failed", "failed"
                job.error = str(exc) if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, RagError | OSError):
                    log.exception("job %s failed", job.id)
            finally:
                job.finished = time.time()
                shutil.rmtree(self.collections.folder(job.collection) / STAGING / job.id, ignore_errors=True)

    def _run(self, job: Job, changes: list[_Change]) -> None:
        from rag.index.build import build_index

        holder = self.collections.holder(job.collection, create=True)
        sources = holder.sources_dir
        assert sources is not None
        pending = self.collections.folder(job.collection) / PENDING / job.id
        try:
            sources.mkdir(parents=True, exist_ok=True)
            holder.index_dir.mkdir(parents=True, exist_ok=True)
            _apply(pending, sources, changes)
        except OSError as exc:
            _roll_back(pending, sources)  # whatever had moved goes back
            raise storage_error(exc, sources) from None

        def report(stage: str, counts: dict[str, int]) -> None:
            job.stage = stage
            job.progress.update(counts)

        try:
            job.stage = "reading"
            summary = build_index([sources], holder.index_dir, self.settings, encoder=self.collections.models.encoder(),
                                  on_progress=report)
        except BaseException as exc:
            _roll_back(pending, sources)
            if isinstance(exc, OSError):
                raise storage_error(exc, holder.index_dir) from None
            raise
        shutil.rmtree(pending, ignore_errors=True)
        job.stage = "opening"
        holder.refresh(wait=True)  # done means answerable: the new index is open before the job says so
        if holder.reload_error or holder.error:  # swapped in, but this server cannot open it
            raise RagError(f"the index was updated but does not open: {holder.reload_error or holder.error}")
        job.result = {"documents": summary.documents, "paragraphs": summary.paragraphs,
                      "new": summary.new_docs, "changed": summary.changed_docs, "deleted": summary.deleted_docs,
                      "skipped": [{"file": s.path, "reason": s.reason} for s in summary.skipped]}


def _apply(pending: Path, sources: Path, changes: list[_Change]) -> None:
    """Move the changes into ``sources/``, the files they replace or remove kept in ``pending``,
    with a journal written first (what to undo after a crash)."""
    backup = pending / "backup"
    backup.mkdir(parents=True)
    journal = {"changes": [{"name": c.name, "new": c.staged is not None,
                            "backup": (sources / c.name).exists()} for c in changes]}
    tmp = pending / (JOURNAL + ".tmp")
    tmp.write_text(json.dumps(journal, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, pending / JOURNAL)
    for c in changes:
        target = sources / c.name
        if target.exists():
            os.replace(target, backup / c.name)
        if c.staged is not None:
            os.replace(c.staged, target)


def _roll_back(pending: Path, sources: Path) -> None:
    """Put ``sources/`` back as the journal found it; then forget the job."""
    try:
        journal = json.loads((pending / JOURNAL).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        shutil.rmtree(pending, ignore_errors=True)
        return
    for c in journal.get("changes", []):
        name = check_file_name(c["name"])
        saved = pending / "backup" / name
        if c.get("new"):
            with contextlib.suppress(FileNotFoundError):
                (sources / name).unlink()
        if saved.exists():
            os.replace(saved, sources / name)
    shutil.rmtree(pending, ignore_errors=True)


def recover(collections: Collections) -> list[str]:
    """After a crash: each job left half-done is rolled back, unless its index was swapped in
    (the live manifest records its files as they are now), then it is kept. Staging is emptied.
    Returns what it did, a line per job."""
    done: list[str] = []
    try:
        folders = [p for p in collections.root.iterdir() if p.is_dir()]
    except OSError:
        return done
    for folder in folders:
        shutil.rmtree(folder / STAGING, ignore_errors=True)
        for pending in sorted((folder / PENDING).glob("*")) if (folder / PENDING).is_dir() else []:
            sources = folder / "sources"
            if _swapped(pending, sources, folder / "index"):
                shutil.rmtree(pending, ignore_errors=True)
                done.append(f"{folder.name}: job {pending.name} had been indexed; kept")
            else:
                _roll_back(pending, sources)
                done.append(f"{folder.name}: job {pending.name} was cut short; its files were put back")
    for line in done:
        log.warning("%s", line)
    return done


def _swapped(pending: Path, sources: Path, index_dir: Path) -> bool:
    """The live index already holds the job's files as they are in ``sources/`` now."""
    try:
        journal = json.loads((pending / JOURNAL).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # no journal: nothing had moved yet
    recorded = (read_manifest_quick(index_dir) or {}).get("sources", {})
    for c in journal.get("changes", []):
        path = sources / c["name"]
        rec = recorded.get(str(path.resolve()))
        if not path.exists():
            if rec is not None:
                return False
            continue
        from rag.files import sha256_file

        if rec is None or rec.get("sha256") != sha256_file(path):
            return False
    return True

