"""Matching text (never shown): NFKC, case folding, OpenCC to one script, jieba tokens.

The same :class:`Normaliser` is used at indexing and at query time; its :meth:`config`
is recorded in the index manifest so a mismatch is refused at load.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: a process that never converts does not load it
    import opencc

from rag.text.english import light_stem

NORMALISER_VERSION = 1

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
# A token worth indexing has a letter, digit or CJK character; punctuation/space tokens are dropped.
_WORDLIKE = re.compile(r"[\w\u3400-\u9fff]", re.UNICODE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_jieba_lock = threading.Lock()


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def cjk_ratio(text: str) -> float:
    """Share of CJK characters among letters/ideographs (0.0 for pure English)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if _CJK.match(c)) / len(letters)


@lru_cache(maxsize=8)
def _opencc(config: str) -> opencc.OpenCC:
    import opencc

    try:
        return opencc.OpenCC(config)
    except Exception as exc:  # opencc raises a bare Exception for unknown configs
        from rag.errors import InputError

        raise InputError(f"unknown OpenCC config {config!r}: use e.g. t2s, s2t, hk2s, s2hk, tw2s") from exc


def convert_script(text: str, config: str | None) -> str:
    """OpenCC conversion (e.g. ``t2s``, ``s2hk``); ``config`` None, empty or 'none' returns ``text``."""
    if not config or config == "none":
        return text
    return _opencc(config).convert(text)


@lru_cache(maxsize=1)
def _jieba() -> Any:  # the jieba module (untyped), initialised once
    import jieba

    jieba.setLogLevel(logging.WARNING)
    with _jieba_lock:
        jieba.initialize()
    return jieba


def normaliser_config(opencc_config: str) -> dict[str, object]:
    """What the normaliser of ``opencc_config`` does, as recorded in the manifest (loads nothing)."""
    return {
        "version": NORMALISER_VERSION,
        "unicode": "NFKC",
        "casefold": True,
        "opencc": opencc_config,
        "tokeniser": "jieba.lcut_for_search",
        "english": "lower+light-stem",  # rag.text.english.light_stem
    }


class Normaliser:
    """One normalisation for corpus and queries: ``normalise`` for matching, ``tokenise`` for BM25."""

    def __init__(self, opencc_config: str = "t2s") -> None:
        self.opencc_config = opencc_config
        _opencc(opencc_config) if opencc_config and opencc_config != "none" else None

    def config(self) -> dict[str, object]:
        return normaliser_config(self.opencc_config)

    # Two normalisers of one config normalise alike: equal, so the matching caches share them.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Normaliser) and other.opencc_config == self.opencc_config

    def __hash__(self) -> int:
        return hash(("Normaliser", self.opencc_config))

    def __repr__(self) -> str:
        return f"Normaliser({self.opencc_config!r})"

    def normalise(self, text: str) -> str:
        text = _CONTROL.sub(" ", unicodedata.normalize("NFKC", text)).casefold()
        return convert_script(text, self.opencc_config)

    def tokenise(self, text: str) -> list[str]:
        """BM25 tokens: jieba search-mode words of the normalised text, punctuation dropped."""
        jieba = _jieba()
        out: list[str] = []
        for tok in jieba.lcut_for_search(self.normalise(text)):
            tok = tok.strip()
            if not tok or not _WORDLIKE.search(tok):
                continue
            out.append(light_stem(tok) if tok.isascii() else tok)
        return out

    def tokenise_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self.tokenise(t) for t in texts]
