"""The named collections a server serves: each an index folder of its own, opened lazily, all
sharing one encoder and one language model (and its one bounded queue).

``default`` is the server's index folder (``RAG_INDEX_DIR`` / ``--index``). Every other
collection ``<name>`` lives under ``RAG_COLLECTIONS_DIR`` (default ``collections/`` beside the
index folder) as ``<name>/index/`` (an ordinary index folder: manifest, data folders) and
``<name>/sources/`` (the files uploaded into it, what a rebuild reads).

A holder notices a new manifest with one ``stat`` per request (inode, mtime, size): an index built
beside a running server (``rag index``, an upload) is opened in the background and swapped in;
requests already running finish on the service they started with.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.config import Settings
from rag.errors import InputError, NotFoundError, NotReadyError, RagError
from rag.index.freshness import MANIFEST, read_manifest_quick

if TYPE_CHECKING:  # `rag serve` imports this module before the service, to load it in a thread
    from rag.embedding import Encoder
    from rag.llm.preread import PreRead
    from rag.service import RagService

log = logging.getLogger("rag.collections")

DEFAULT = "default"
NAME_RULE = "lowercase letters, digits, '-' and '_', 1-64 characters, starting with a letter or digit"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
INDEX, SOURCES = "index", "sources"

Stamp = tuple[int, int, int] | None
_NEVER = ("never opened",)  # the stamp of a holder that has not tried to open its index yet


def check_name(name: Any) -> str:
    """A collection name: a slug (it names a folder), else an InputError that says the rule."""
    if not isinstance(name, str) or not _NAME.match(name):
        shown = repr(name)[:80]
        raise InputError(f"collection must be a slug ({NAME_RULE}, e.g. team-notes), got {shown}")
    return name


def manifest_stamp(index_dir: Path) -> Stamp:
    """(inode, mtime ns, size) of the manifest, None without one: a build swaps in a new file."""
    try:
        st = os.stat(index_dir / MANIFEST)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Models:
    """The models every collection of a process shares, loaded once: the first service opened
    with :meth:`RagService.open` is the base, the others are its siblings."""

    def __init__(self, settings: Settings, base: RagService | None = None) -> None:
        self.settings = settings
        self.base = base
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()
        self._prereads: dict[Path, PreRead] = {}

    @property
    def loaded(self) -> bool:
        return self.base is not None

    def open(self, index_dir: Path) -> RagService:
        """A service over ``index_dir``, sharing the models (loaded by the first call)."""
        from rag.service import RagService

        base = self.base
        if base is not None:
            return self._preread(base.sibling(RagService.open_index(index_dir, self.settings)))
        with self._lock:
            if self.base is not None:
                return self._preread(self.base.sibling(RagService.open_index(index_dir, self.settings)))
            # The product's way: a language model that cannot be had leaves it lean, saying why;
            # the judge's paragraph states are kept on disk beside each index.
            svc = RagService.open(index_dir, self.settings, encoder=self._encoder, lean_fallback=True, kv_store=True)
            self.base = svc
            return self._preread(svc)

    def _preread(self, svc: RagService) -> RagService:
        """Start reading ``svc``'s paragraphs for the judge (``RAG_LLM_PREREAD``), one index at a
        time: the pre-read of an index opened again (rebuilt) replaces the one running for it."""
        if not self.settings.llm_preread:
            return svc
        key = Path(svc.index.index_dir).resolve()
        old = self._prereads.pop(key, None)
        if old is not None:
            old.stop(timeout=30)
        pre = svc.start_preread()
        if pre is not None:
            self._prereads[key] = pre
        return svc

    def encoder(self) -> Encoder:
        """The shared encoder (a build needs it before any index is open: it is loaded then)."""
        if self.base is not None:
            return self.base.encoder
        with self._lock:
            if self.base is not None:
                return self.base.encoder
            if self._encoder is None:
                from rag.embedding import get_encoder

                self._encoder = get_encoder(self.settings)
            return self._encoder


class IndexHolder:
    """One collection's loaded service; opens it once, and again when its manifest changes."""

    def __init__(self, settings: Settings, service: RagService | None = None, *, name: str = DEFAULT,
                 index_dir: Path | None = None, sources_dir: Path | None = None, models: Models | None = None) -> None:
        self.settings = settings
        self.name = name
        given = getattr(getattr(service, "index", None), "index_dir", None)
        self.index_dir = Path(index_dir or given or settings.index_dir)
        self.sources_dir = sources_dir  # None: not a collection that takes uploads (the default)
        self.models = models or Models(settings, service)
        self.service = service
        self.error: str | None = None
        self.reload_error: str | None = None
        self.loading = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # The manifest last opened (or tried): a different one is opened again.
        self._stamp: Stamp | tuple[str] = manifest_stamp(self.index_dir) if service is not None else _NEVER

    @property
    def ready(self) -> bool:
        return self.service is not None

    def start(self) -> None:
        """Load in a background thread (once at a time): ``rag serve`` starts the default
        collection's load while the web stack imports; a new manifest is opened the same way."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self.service is not None and manifest_stamp(self.index_dir) == self._stamp:
                return
            self.loading = self.service is None  # before the thread starts: no request may see "not loaded"
            self._thread = threading.Thread(target=self.load, name=f"rag-load-{self.name}", daemon=True)
            self._thread.start()

    def load(self) -> None:
        """Open the index (and the models, the first time); a failure is kept as the message
        /readyz reports. A service already serving keeps serving when its replacement fails."""
        with self._lock:
            stamp = manifest_stamp(self.index_dir)
            if self.service is not None and stamp == self._stamp:
                return
            self.loading = self.service is None
            try:
                service = self.models.open(self.index_dir)
                self.service, self._stamp = service, stamp  # one assignment: in-flight requests keep theirs
                self.error = self.reload_error = None
                log.info("collection %s: opened %s", self.name, self.index_dir)
            except Exception as exc:  # a broken index must not stop /healthz, the UI or other collections
                self._stamp = stamp  # not tried again until the manifest changes
                message = str(exc) if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, RagError):
                    log.exception("loading the index of collection %s failed", self.name)
                else:
                    log.warning("collection %s: index not loaded: %s", self.name, exc)
                if self.service is None:
                    self.error = message
                else:
                    self.reload_error = message
            finally:
                self.loading = False

    def refresh(self, *, wait: bool = False) -> None:
        """One ``stat``: a manifest other than the one opened is opened (in the background, or
        here with ``wait``, or here when the models are already loaded and nothing is served yet)."""
        stamp = manifest_stamp(self.index_dir)
        if stamp == self._stamp or self.loading:
            return
        if self._stamp == _NEVER and self.service is not None:  # a service set from outside: adopt it
            self._stamp = stamp
            if self.models.base is None:
                self.models.base = self.service
            return
        if wait or (self.service is None and self.models.loaded):
            self.load()
        else:
            self.start()

    def get(self) -> RagService:
        """The service, or a 503 NotReadyError that says what to do (the reason is in /readyz)."""
        self.refresh()
        service = self.service
        if service is not None:
            return service
        if self.loading:
            raise NotReadyError("index is loading; retry in a few seconds")
        if self.name != DEFAULT and manifest_stamp(self.index_dir) is None:
            raise NotReadyError(f"collection {self.name!r} has no index yet: upload documents into it first")
        raise NotReadyError("index not loaded: run `rag index` (GET /readyz says why)")

    def not_ready_reason(self) -> str:
        """The full reason for /readyz and the server's own UI status line."""
        if self.loading:
            return "index is loading; retry in a few seconds"
        return f"index not loaded: run `rag index` ({self.error or 'not loaded yet'})"

    def info(self) -> dict[str, Any]:
        """Index facts for /readyz and the UI status line."""
        svc = self.get()
        manifest = svc.index.manifest
        counts = manifest.get("counts", {})
        model = manifest.get("model", {})
        documents = counts.get("documents")
        paragraphs = counts.get("paragraphs")
        if documents is None:
            documents = len(svc.index.documents)
        if paragraphs is None:
            paragraphs = len(svc.index.paragraphs)
        judge = svc.judge
        llm: dict[str, Any] = {"mode": "off"}
        if judge is not None:
            llm = {**judge.describe(), "load_s": round(svc.llm_load_seconds, 2)}
            if svc.model_queue is not None:
                llm["queue"] = svc.model_queue.stats()
            if svc.preread is not None:
                llm["preread"] = svc.preread.describe()
            elif svc.kv_store is not None:
                llm["kv_store"] = svc.kv_store.describe()
        elif svc.llm_error is not None:  # RAG_LLM=local asked for it; the service runs lean
            llm = {"mode": "off", "lean": True, "requested": svc.settings.llm, "error": svc.llm_error}
        out = {
            "llm": llm,
            # What a request's answer_mode can choose: written needs a model that writes.
            "answers": {"default": svc.default_answer_mode, "written": svc.writer is not None},
            "documents": documents,
            "paragraphs": paragraphs,
            "chunks": counts.get("chunks"),
            "model": {"name": model.get("name"), "id": model.get("id") or svc.encoder.model_id,
                      "dim": model.get("dim")},
            "index_created": manifest.get("created"),
        }
        if self.reload_error:
            out["reload_error"] = self.reload_error
        return out

    def summary(self) -> dict[str, Any]:
        """What ``GET /api/collections`` says of it, without opening it: counts from the manifest."""
        service = self.service
        manifest = service.index.manifest if service is not None else read_manifest_quick(self.index_dir)
        counts = (manifest or {}).get("counts", {})
        model = (manifest or {}).get("model", {})
        out: dict[str, Any] = {
            "name": self.name,
            "ready": service is not None or (manifest is not None and self.error is None),
            "loaded": service is not None,
            "documents": counts.get("documents", 0),
            "paragraphs": counts.get("paragraphs", 0),
            "model": {"name": model.get("name"), "id": model.get("id")} if model else None,
            "index_created": (manifest or {}).get("created"),
            "uploads": self.sources_dir is not None,
        }
        if self.error and service is None:
            out["error"] = self.error
        return out


class Collections:
    """Every collection of a server: ``default`` plus the folders under ``RAG_COLLECTIONS_DIR``."""

    def __init__(self, settings: Settings, default: IndexHolder) -> None:
        self.settings = settings
        self.root = settings.collections_root()
        self.default = default
        self.models = default.models
        self._holders: dict[str, IndexHolder] = {DEFAULT: default}
        self._lock = threading.Lock()

    def folder(self, name: str) -> Path:
        return self.root / check_name(name)

    def names(self) -> list[str]:
        """``default`` first, then every collection folder (one with an index or sources), sorted."""
        found: set[str] = set(self._holders)
        try:
            for child in self.root.iterdir():
                if _NAME.match(child.name) and ((child / INDEX).is_dir() or (child / SOURCES).is_dir()):
                    found.add(child.name)
        except OSError:
            pass
        found.discard(DEFAULT)
        return [DEFAULT, *sorted(found)]

    def holder(self, name: str | None, *, create: bool = False) -> IndexHolder:
        """The holder of ``name`` (None: default); an unknown name is a 404 unless ``create``."""
        name = DEFAULT if name is None else check_name(name)
        with self._lock:
            holder = self._holders.get(name)
            if holder is not None:
                return holder
            folder = self.root / name
            if not create and not ((folder / INDEX).is_dir() or (folder / SOURCES).is_dir()):
                raise NotFoundError(f"no collection named {name!r}: GET /api/collections lists them")
            holder = IndexHolder(self.settings, name=name, index_dir=folder / INDEX, sources_dir=folder / SOURCES,
                                 models=self.models)
            self._holders[name] = holder
            return holder

    def service(self, name: str | None = None) -> RagService:
        """The loaded service of a collection (opened on first use)."""
        return self.holder(name).get()

    def summaries(self) -> list[dict[str, Any]]:
        out = []
        for name in self.names():
            try:
                out.append(self.holder(name).summary())
            except RagError:  # removed between the listing and now
                continue
        return out
