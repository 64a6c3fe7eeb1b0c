"""The judge's paragraph KV caches on disk, beside the index (``<index>/llm-kv/<model>/``).

A paragraph the judge has read is a *prefix*: the instructions and the paragraph, before the
question (``rag.llm.judge``). Evaluating one costs about a second on 2 cores; restoring its saved
KV state costs a few milliseconds. The engine keeps the states it evaluated in memory
(``RAG_LLM_CACHE_MB``); this store keeps them on disk too, so that a restarted server, or the
next `rag eval`, does not evaluate them again (``RAG_LLM_KV_DISK_MB``).

- One file per prefix, named by the SHA-256 of its tokens: the same paragraph in two collections,
  or read for two questions, is one file. The folder is named by the model's identity (file name,
  size, a hash of its first MiB) and the llama.cpp version, whose state format it is; a state that
  still does not load is evaluated again (``LocalModel``), never trusted.
- Files are written whole (a temporary name, then a rename) and never changed; reading one
  refreshes its time, and a full store drops the least recently read first.
- ``uses.json`` counts how often each prefix was asked for: the pre-read
  (``rag.llm.preread``) reads the most asked-for paragraphs first.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path

log = logging.getLogger(__name__)

FOLDER = "llm-kv"
USES = "uses.json"
SUFFIX = ".kv"
FLUSH_S = 30.0  # uses.json is rewritten at most this often (and at close)


def model_key(path: Path) -> str:
    """The store's sub-folder for a model file: its name, size, first MiB and the engine version."""
    try:
        import llama_cpp

        engine = str(getattr(llama_cpp, "__version__", "?"))
    except ImportError:
        engine = "none"
    path = Path(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
    h.update(f"|{path.name}|{path.stat().st_size}|{engine}".encode())
    return f"{path.stem[:40]}-{h.hexdigest()[:12]}"


def prefix_key(tokens: list[int] | tuple[int, ...]) -> bytes:
    """The identity of a prefix: the SHA-256 of its tokens (as the engine's memory cache keys it)."""
    import numpy as np

    return hashlib.sha256(np.asarray(tokens, dtype=np.int32).tobytes()).digest()


class PrefixStore:
    """Saved KV states of prefixes in one folder, at most ``budget_mb`` MiB of them. Thread-safe."""

    def __init__(self, folder: Path, budget_mb: int) -> None:
        self.folder = Path(folder)
        self.budget = max(0, budget_mb) << 20
        self._lock = threading.Lock()
        self._sizes: dict[bytes, int] = {}
        self._uses: Counter[str] = Counter()
        self._dirty = False
        self._flushed = time.monotonic()
        self.writable = True
        self.dropped = 0  # states pushed out by a full store
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for f in self.folder.iterdir():
                if f.suffix == SUFFIX and len(f.stem) == 64:
                    try:
                        self._sizes[bytes.fromhex(f.stem)] = f.stat().st_size
                    except (OSError, ValueError):
                        continue
                elif f.name.endswith(".tmp"):
                    f.unlink(missing_ok=True)  # a write that a killed process left half-done
        except OSError as exc:
            log.warning("the judge's KV store in %s is not usable (%s); paragraphs are kept in memory only",
                        self.folder, exc)
            self.writable = False
            return
        atexit.register(self.flush)  # the counts since the last flush, at a clean exit
        uses = self.folder / USES
        try:
            if uses.exists():
                self._uses.update({str(k): int(v) for k, v in json.loads(uses.read_text(encoding="utf-8")).items()})
        except (OSError, ValueError, TypeError, AttributeError) as exc:  # only the pre-read's order is lost
            log.warning("ignoring %s (%s): the pre-read starts in the index's order", uses, exc)

    # -- reading --------------------------------------------------------------------------
    def __contains__(self, key: bytes) -> bool:
        return key in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def get(self, key: bytes) -> bytes | None:
        """The saved state of ``key``, or None (not saved, or unreadable: then forgotten)."""
        if key not in self._sizes:
            return None
        path = self._path(key)
        try:
            data = path.read_bytes()
            os.utime(path)  # recently read: dropped last when the store is full
        except OSError:
            with self._lock:
                self._sizes.pop(key, None)
            return None
        return data

    def forget(self, key: bytes) -> None:
        """Remove a saved state that did not load."""
        with self._lock:
            if self._sizes.pop(key, None) is not None:
                self._path(key).unlink(missing_ok=True)

    # -- writing --------------------------------------------------------------------------
    def room_for(self, size: int) -> bool:
        """Whether ``size`` more bytes fit without dropping anything."""
        return self.writable and self.size_bytes + size <= self.budget

    def put(self, key: bytes, data: bytes, *, evict: bool = True) -> bool:
        """Save ``data`` for ``key``. When the store is full, ``evict`` drops the least recently
        read states to make room; without it (the pre-read) nothing is saved. True when saved."""
        if not self.writable or key in self._sizes or len(data) > self.budget:
            return key in self._sizes
        with self._lock:
            if self.size_bytes + len(data) > self.budget:
                if not evict:
                    return False
                self._drop_oldest(self.size_bytes + len(data) - self.budget)
            path = self._path(key)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                log.warning("cannot save a KV state in %s (%s); keeping the rest in memory only", self.folder, exc)
                self.writable = False
                return False
            self._sizes[key] = len(data)
            return True

    def _drop_oldest(self, need: int) -> None:
        def age(key: bytes) -> float:
            try:
                return self._path(key).stat().st_mtime
            except OSError:
                return 0.0

        freed = 0
        for key in sorted(self._sizes, key=age):
            if freed >= need:
                break
            freed += self._sizes.pop(key)
            self._path(key).unlink(missing_ok=True)
            self.dropped += 1

    # -- what is asked for ----------------------------------------------------------------
    def note(self, key: bytes) -> None:
        """Count one question's use of ``key`` (the pre-read's order)."""
        with self._lock:
            self._uses[key.hex()] += 1
            self._dirty = True
        if time.monotonic() - self._flushed > FLUSH_S:
            self.flush()

    def uses(self, key: bytes) -> int:
        return self._uses.get(key.hex(), 0)

    @property
    def asked(self) -> bool:
        """Whether any use was counted (else the pre-read keeps the index's order)."""
        return bool(self._uses)

    def flush(self) -> None:
        """Write ``uses.json`` when it changed."""
        with self._lock:
            if not self._dirty or not self.writable:
                return
            data = json.dumps(dict(self._uses.most_common(100_000)))
            self._dirty = False
            self._flushed = time.monotonic()
        path = self.folder / USES
        tmp = path.with_name(f"{USES}.{os.getpid()}.tmp")
        try:
            tmp.write_text(data, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.debug("cannot write %s: %s", path, exc)

    def describe(self) -> dict[str, object]:
        return {"folder": str(self.folder), "files": len(self._sizes), "files_mb": round(self.size_bytes / 2**20, 1),
                "budget_mb": self.budget >> 20, "writable": self.writable}

    def _path(self, key: bytes) -> Path:
        return self.folder / f"{key.hex()}{SUFFIX}"


def store_for(index_dir: Path, model_path: Path, budget_mb: int) -> PrefixStore | None:
    """The store beside ``index_dir`` for this model; None when turned off (``budget_mb`` 0)."""
    if budget_mb <= 0:
        return None
    return PrefixStore(Path(index_dir) / FOLDER / model_key(model_path), budget_mb)
