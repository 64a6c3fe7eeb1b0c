"""What the English gloss keeps per paragraph, so that the next build glosses only what changed.

Glossing is most of an update's work (~1.7 ms CPU a paragraph: OpenCC, jieba, CC-CEDICT,
stemming, plus mining the ``term(English)`` pairs), and one paragraph's gloss depends only on
its text, the glosser's configuration and the glossary terms the text contains. So the
``gloss/`` folder keeps, per paragraph row:

* ``para_keys.npy``: a key of its text (16 bytes of BLAKE2b), by which the next build finds it;
* ``state_*``: its gloss term counts (a :class:`rag.store.bm25state.BM25State`);
* ``para_pairs.json``: the pairs mined from it, so the next build's glossary (glossary files,
  then the pairs of every paragraph in order) needs only the new texts mined;
* ``para_chars.npy``: which characters its normalised text has, as a 1,024-bit set;

and ``glossary.json``, the glossary and configuration the counts were made with.

A paragraph's counts are taken over when its text key is known, the configuration is the same
and it contains no *changed* glossary term (one added, removed or given other English words: a
pair mined from a new document, a glossary edit). A text contains a term only if its character
set holds every character of the term, so the bit sets leave few paragraphs to normalise and
search; the counts equal a full build's (``tests/test_gloss_reuse.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexStateError
from rag.store.bm25state import STATE_FILES, BM25State

KEY_BYTES = 16
CHAR_BITS = 1024
KEYS_FILE = "para_keys.npy"
CHARS_FILE = "para_chars.npy"
PAIRS_FILE = "para_pairs.json"
GLOSSARY_FILE = "glossary.json"
ROW_FILES = (KEYS_FILE, CHARS_FILE, PAIRS_FILE, GLOSSARY_FILE, *STATE_FILES)

Pair = tuple[str, str]


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """The key of each text, uint8 (n, 16)."""
    blob = b"".join(hashlib.blake2b(t.encode("utf-8"), digest_size=KEY_BYTES).digest() for t in texts)
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(texts), KEY_BYTES).copy()


def _bits(chars: Iterable[str]) -> np.ndarray:
    """The bit of each character (a multiplicative hash of its code point: neighbours spread)."""
    codes = np.fromiter((ord(c) for c in chars), dtype=np.uint64)
    return ((codes * np.uint64(2654435761)) >> np.uint64(7)) % np.uint64(CHAR_BITS)


def char_set(text: str) -> np.ndarray:
    """The characters of a (normalised) text as CHAR_BITS bits, uint8 (CHAR_BITS // 8,)."""
    bits = np.zeros(CHAR_BITS, dtype=bool)
    bits[_bits(set(text))] = True
    return np.packbits(bits)


@dataclass
class GlossRows:
    """Per-paragraph gloss records of one index (rows in paragraph order) and the glossary behind them."""

    keys: np.ndarray  # uint8 (n, KEY_BYTES)
    chars: np.ndarray  # uint8 (n, CHAR_BITS // 8)
    pairs: list[list[Pair]]
    state: BM25State
    entries: dict[str, list[str]]  # the glossary the counts were made with
    reuse_key: dict[str, Any]  # the glosser's and normaliser's configuration

    def __len__(self) -> int:
        return len(self.keys)

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """This index's row of each key, -1 where none has it."""
        def split(a: np.ndarray) -> list[bytes]:
            blob = np.ascontiguousarray(a).tobytes()
            return [blob[i : i + KEY_BYTES] for i in range(0, len(blob), KEY_BYTES)]

        row = {k: i for i, k in enumerate(split(self.keys))}
        return np.fromiter((row.get(k, -1) for k in split(keys)), dtype=np.int64, count=len(keys))

    def may_contain(self, rows: np.ndarray, terms: Iterable[str]) -> np.ndarray:
        """Which of ``rows`` may contain one of ``terms`` (every character of it in the row's set):
        a mask with no false negatives."""
        found = np.zeros(len(rows), dtype=bool)
        for term in terms:
            packed = char_set(term)
            cols = np.flatnonzero(packed)
            sub = self.chars[np.ix_(rows, cols)]
            found |= np.all((sub & packed[cols]) == packed[cols], axis=1)
        return found

    def save(self, folder: Path) -> list[str]:
        """Write the records into ``folder``; returns the file names."""
        folder = Path(folder)
        np.save(folder / KEYS_FILE, self.keys)
        np.save(folder / CHARS_FILE, self.chars)
        sparse = {str(i): [list(p) for p in ps] for i, ps in enumerate(self.pairs) if ps}
        (folder / PAIRS_FILE).write_text(json.dumps({"rows": len(self.pairs), "pairs": sparse}, ensure_ascii=False),
                                         encoding="utf-8")
        (folder / GLOSSARY_FILE).write_text(json.dumps({"reuse_key": self.reuse_key, "entries": self.entries},
                                                       ensure_ascii=False), encoding="utf-8")
        self.state.save(folder)
        return list(ROW_FILES)

    @classmethod
    def load(cls, folder: Path) -> GlossRows | None:
        """The records in ``folder``; None when it has none (a gloss written before they were kept).

        Arrays are memory-mapped: a build reads only the rows it takes over.
        """
        folder = Path(folder)
        if not all((folder / name).is_file() for name in ROW_FILES):
            return None
        try:
            keys = np.load(folder / KEYS_FILE, mmap_mode="r")
            chars = np.load(folder / CHARS_FILE, mmap_mode="r")
            raw = json.loads((folder / PAIRS_FILE).read_text(encoding="utf-8"))
            pairs: list[list[Pair]] = [[] for _ in range(int(raw["rows"]))]
            for i, ps in raw["pairs"].items():
                pairs[int(i)] = [(str(zh), str(en)) for zh, en in ps]
            meta = json.loads((folder / GLOSSARY_FILE).read_text(encoding="utf-8"))
            entries = {str(k): [str(a) for a in v] for k, v in meta["entries"].items()}
            state = BM25State.load(folder, mmap=True)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise IndexStateError(f"cannot read the English gloss records in {folder}: {exc}; "
                                  "rebuild with `rag index --full`") from exc
        n = len(keys)
        if keys.shape != (n, KEY_BYTES) or chars.shape != (n, CHAR_BITS // 8) or len(pairs) != n or len(state) != n:
            raise IndexStateError(f"the English gloss records in {folder} disagree; rebuild with `rag index --full`")
        return cls(keys, chars, pairs, state, entries, dict(meta["reuse_key"]))
