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
