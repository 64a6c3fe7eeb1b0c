"""File helpers shared by the index, the model converter and the evaluation runner, and the
names of the files beside a corpus's documents."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

# Files beside the documents of a corpus that are not documents themselves.
METADATA_FILE = "metadata.json"  # per-folder titles, dates, sources (rag.ingest.corpus)
GLOSSARY_FILE = "glossary.tsv"  # Chinese term -> English names, read into the English gloss (rag.index.gloss)


def corpus_files(root: Path) -> list[Path]:
    """The files of a corpus folder: every file under ``root`` that is not hidden (no ``.x`` file
    or folder on the way), sorted by path. What `rag index` reads, and what its up-to-date check
    looks at."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    """The hex sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(bufsize):
            h.update(block)
    return h.hexdigest()


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (ignored where a filesystem refuses)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` (created if needed); blocks until it is free."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
