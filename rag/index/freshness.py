"""Is the index up to date? The corpus files and settings an index was built from, and the check.

`rag index` calls :func:`up_to_date` before anything else: when every corpus file has the size,
mtime and sha256 the manifest recorded, the settings give the same build key and the data
folder's files are all there with their sizes, nothing needs doing and the command says so
without loading the model, cleaning a document or writing anything. This module uses the
standard library only (no numpy, torch, FAISS or bm25s), so that answer comes in a fraction of
a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.files import GLOSSARY_FILE, METADATA_FILE, corpus_files
from rag.index.compat import expected_key, format_fits, key_fits

MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest_sha256"  # the manifest's own checksum (of every other key)


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest without its own digest (canonical JSON), so an edit is detected."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_DIGEST}
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def split_glossaries(value: str | None) -> list[tuple[str, Path]]:
    """``RAG_GLOSSARY`` as (item as written, path): comma- or path-separator-separated."""
    items = (i.strip() for i in re.split(rf"[,{re.escape(os.pathsep)}]", value or ""))
    return [(i, Path(i).expanduser()) for i in items if i]


def glossary_paths(settings: Any) -> list[Path]:
    """The files of ``RAG_GLOSSARY``: inputs of every build, like the corpus files."""
    return [path for _, path in split_glossaries(getattr(settings, "glossary", None))]


def source_files(paths: Sequence[Path], extra: Sequence[Path] = ()) -> list[Path]:
    """The files `rag index PATHS` reads, documents, ``metadata.json`` and glossaries alike.

    A folder: :func:`rag.files.corpus_files` (as ``rag.ingest.corpus.load_corpus`` walks it). A
    file: itself, and the ``metadata.json`` and ``glossary.tsv`` beside it (recorded even when
    absent, so adding one counts as a change). Then ``extra`` (the ``RAG_GLOSSARY`` files).
    """
    out: list[Path] = []
    for given in paths:
        given = Path(given)
        if given.is_dir():
            out.extend(corpus_files(given))
        else:
            out.extend([given, given.parent / METADATA_FILE, given.parent / GLOSSARY_FILE])
    out.extend(p for p in map(Path, extra) if p not in out)
    return out


def file_record(path: Path, *, digest: str | None = None) -> dict[str, Any] | None:
    """{size, mtime_ns, sha256} of a file, None when absent; ``digest``: a sha256 already known."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        digest = h.hexdigest()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}


def scan_sources(paths: Sequence[Path], extra: Sequence[Path] = ()) -> dict[str, dict[str, Any] | None]:
    """Absolute path -> :func:`file_record` of every source file (hashes every one)."""
    return {str(p.resolve()): file_record(p) for p in source_files(paths, extra)}


def resolved_paths(paths: Sequence[Path]) -> list[str]:
    return [str(Path(p).resolve()) for p in paths]


def read_manifest_quick(index_dir: Path) -> dict[str, Any] | None:
    """The manifest when it is readable, of this format and matches its own checksum, else None."""
    try:
        data = json.loads((Path(index_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not format_fits(data):
        return None
    if data.get(MANIFEST_DIGEST) != manifest_digest(data):
        return None
    return data


def data_files_present(index_dir: Path, manifest: dict[str, Any]) -> bool:
    """Every file the manifest lists is in its data folder with the recorded size (no hashing)."""
    name, checksums = manifest.get("data"), manifest.get("checksums")
    if not isinstance(name, str) or not name.startswith("data-") or "/" in name or not isinstance(checksums, dict):
        return False
    folder = Path(index_dir) / name
    try:
        return all((folder / f).stat().st_size == c["size"] for f, c in checksums.items())
    except (OSError, KeyError, TypeError):
        return False


def matches(manifest: dict[str, Any], key: dict[str, Any], paths: Sequence[Path],
            sources: dict[str, dict[str, Any] | None]) -> bool:
    """The manifest was built with ``key`` from exactly these files (size, mtime and sha256)."""
    if not key_fits(manifest, key) or manifest.get("paths") != resolved_paths(paths):
        return False
    recorded = manifest.get("sources")
    if not isinstance(recorded, dict) or recorded.keys() != sources.keys():
        return False
    for name, now in sources.items():
        was = recorded[name]
        if (was is None) != (now is None):
            return False
        if now is not None and (
            not isinstance(was, dict) or any(was.get(k) != now[k] for k in ("size", "mtime_ns", "sha256"))
        ):
            return False
    return True


@dataclass
class UpToDate:
    index_dir: Path
    manifest: dict[str, Any]
    files: int
    seconds: float

    def lines(self) -> list[str]:
        c = self.manifest.get("counts", {})
        return [
            f"index up to date: {c.get('documents', '?')} documents, {c.get('paragraphs', '?')} paragraphs, "
            f"{c.get('chunks', '?')} chunks in {self.index_dir} ({self.files} files unchanged, checked in "
            f"{self.seconds:.2f}s)"
        ]


def up_to_date(paths: Sequence[Path], index_dir: Path, settings: Any) -> UpToDate | None:
    """An :class:`UpToDate` when nothing changed since the last build, else None (build then)."""
    t0 = time.perf_counter()
    manifest = read_manifest_quick(index_dir)
    if manifest is None or not all(Path(p).exists() for p in paths):
        return None
    key = expected_key(settings, manifest)
    recorded = manifest.get("sources")
    if not key_fits(manifest, key) or not isinstance(recorded, dict):
        return None
    # Cheap before costly: the set of files and their sizes and mtimes first, hashes only then.
    files = source_files(paths, glossary_paths(settings))
    names = [str(p.resolve()) for p in files]
    if set(names) != recorded.keys():
        return None
    for p, name in zip(files, names, strict=True):
        was = recorded[name]
        try:
            st = p.stat()
        except FileNotFoundError:
            if was is not None:
                return None
            continue
        if not isinstance(was, dict) or was.get("size") != st.st_size or was.get("mtime_ns") != st.st_mtime_ns:
            return None
    sources = {name: file_record(p) for p, name in zip(files, names, strict=True)}
    if not matches(manifest, key, paths, sources) or not data_files_present(index_dir, manifest):
        return None
    return UpToDate(Path(index_dir), manifest, sum(1 for s in sources.values() if s), time.perf_counter() - t0)
