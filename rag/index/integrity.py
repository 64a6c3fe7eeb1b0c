"""Integrity of a data folder: every file's size and sha256 against the manifest, and the stamps
that let an open skip hashing files unchanged since they were last hashed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import IndexStateError
from rag.files import sha256_file

if TYPE_CHECKING:
    from rag.config import Settings
from rag.index.manifest import write_json_atomic

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
