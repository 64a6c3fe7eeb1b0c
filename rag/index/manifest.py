"""The index folder's manifest (written last, atomically; it names the live data folder), the
build lock and the readers' hold on a data folder."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from rag.errors import IndexStateError
from rag.files import fsync_dir
from rag.index.compat import format_mismatch
from rag.index.freshness import MANIFEST, MANIFEST_DIGEST, manifest_digest

LOCK = ".lock"
_DATA_NAME = re.compile(r"^data-[A-Za-z0-9._-]+$")


def write_json_atomic(path: Path, data: Any, *, before_replace: Callable[[], None] | None = None) -> None:
    """Write ``data`` to a temporary file, fsync it, then rename it over ``path``.

    ``before_replace`` runs between the two (a build's test hook marks that point).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    if before_replace is not None:
        before_replace()
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
    other_format = format_mismatch(data, path, index_dir)
    if other_format is not None:
        raise IndexStateError(other_format.message)
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
