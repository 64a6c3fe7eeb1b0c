"""The English of a Chinese span, from sources that state it, never made up: the glossary files
the index was built with (and the ``term(English)`` pairs mined from the corpus then), the
paragraph's own ``term(English)`` pairs, and CC-CEDICT.

``Lexicon.gloss("陳祖恒", paragraph)`` -> ``"Sunny Chan"`` (the corpus glossary);
``"人工智能"`` -> ``"artificial intelligence"`` (CC-CEDICT); a name no source gives -> None.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rag.errors import InputError
from rag.index.gloss import Glossary, Senses, load_senses, mine_pairs, read_glossary
from rag.text.normalise import Normaliser, _jieba, has_cjk

log = logging.getLogger(__name__)

MIN_NAME_CHARS = 3  # an English name of the glossaries shorter than this is not looked for (names_in)
MAX_DICTIONARY_WORDS = 4  # a span glossed word by word from CC-CEDICT has at most this many words
# A list as the sources write one: 生物科技、人工智能和微電子.
_LIST_SEPARATORS = re.compile(r"[、，,；;]|(?<=.{2})(?:以及|及|和|與|与)(?=.{2})")
# Senses that are not a translation to show (a grammatical note, a cross-reference).
_NOT_A_TRANSLATION = re.compile(r"^(?:to be |classifier|particle|prefix|suffix|abbr|variant|see |used )", re.I)


class Lexicon:
    """Chinese term -> English, from the glossaries, the corpus's own pairs and CC-CEDICT."""

    def __init__(self, normaliser: Normaliser | None = None, glossary: Glossary | None = None, *,
                 senses: Senses | None = None, cache_dir: Path | None = None, dictionary: bool = True) -> None:
        self.normaliser = normaliser or Normaliser()
        self.glossary = glossary or Glossary()
        self._senses = senses
        self._cache_dir = cache_dir
        self._dictionary = dictionary  # False: glossaries and the paragraph's own pairs only
        self._name_index: tuple[re.Pattern[str], dict[str, list[str]]] | bool | None = None  # names_in, built once

    @classmethod
    def from_report(cls, report: Mapping[str, Any] | None, normaliser: Normaliser, *,
                    cache_dir: Path | None = None) -> Lexicon:
        """The lexicon of an index: its gloss report's glossary ``files`` (those still readable)
        and ``mined`` pairs (rag/index/gloss.py), with CC-CEDICT read on first use."""
        glossary = Glossary()
        report = report or {}
        for name in report.get("files", []):
            try:
                read_glossary(Path(name), glossary, normaliser)
            except InputError:  # moved since the index was built: its pairs are in the gloss still
                log.debug("glossary %s cannot be read; English glosses go without it", name)
        for term, english in report.get("mined", []):
            glossary.add(term, [english], "mined", normaliser)
        return cls(normaliser, glossary, cache_dir=cache_dir)

    def names_in(self, text: str) -> dict[str, list[str]]:
        """The glossaries' English names that ``text`` states (whole words, any case), each with
        the Chinese terms (matching form) it names: ``"Productivity Council"`` ->
        ``["生产力局", "香港生产力促进局"]``. A longer name is taken before one inside it."""
        found = self._names()
        if found is None:
            return {}
        pattern, terms = found
        out: dict[str, list[str]] = {}
        for m in pattern.finditer(text):
            name = m.group(1)
            key = name if name in terms else name.casefold()
            if key in terms:  # an acronym matches in capitals only: MOST, not "most"
                out.setdefault(name, terms[key])
        return out

    def _names(self) -> tuple[re.Pattern[str], dict[str, list[str]]] | None:
        if self._name_index is None:
            terms: dict[str, list[str]] = {}
            for key, aliases in self.glossary.entries.items():
                for alias in aliases:
                    if len(alias) >= MIN_NAME_CHARS and not has_cjk(alias):
                        # an acronym (HKPC, MOST) is kept as written, a name in any case
                        terms.setdefault(alias if alias.isupper() else alias.casefold(), []).append(key)
            if not terms:
                self._name_index = False
            else:
                alternatives = "|".join(re.escape(a) for a in sorted(terms, key=len, reverse=True))
                self._name_index = (re.compile(rf"(?<!\w)({alternatives})(?!\w)", re.IGNORECASE), terms)
        return self._name_index if isinstance(self._name_index, tuple) else None

    @property
    def senses(self) -> Senses | None:
        if self._senses is None and self._dictionary:
            self._senses = load_senses(self._cache_dir)
        return self._senses

    def _key(self, term: str) -> str:
        return self.normaliser.normalise(term).strip()

    def _stated(self, term: str, pairs: Iterable[tuple[str, str]]) -> str | None:
        """The English a glossary or the paragraph gives ``term``."""
        key = self._key(term)
        for zh, english in pairs:  # the paragraph's own words first: 香港網絡安全事故協調中心(HKCERT)
            if self._key(zh) == key:
                return english
        aliases = self.glossary.entries.get(key)
        return aliases[0] if aliases else None

    def _dictionary_gloss(self, term: str) -> str | None:
        """CC-CEDICT's first sense of ``term``; or of each of its words (jieba) when every word of
        two characters or more has one and there are at most MAX_DICTIONARY_WORDS."""
        senses = self.senses
        if senses is None:
            return None
        key = self._key(term)
        whole = _first_sense(senses.get(key))
        if whole:
            return whole
        words = [w for w in _jieba().lcut(key) if w.strip()]
        if not 1 < len(words) <= MAX_DICTIONARY_WORDS or any(len(w) < 2 for w in words):
            return None
        glossed = [_first_sense(senses.get(w)) for w in words]
        return " ".join(g for g in glossed if g) if all(glossed) else None

    def gloss(self, span: str, paragraph: str = "") -> str | None:
        """The English of ``span``: a glossary's or the paragraph's own, else CC-CEDICT's; for a
        list, the English of each item (all of them, or None); None when no source gives it."""
        span = span.strip()
        if not has_cjk(span):
            return None
        pairs = mine_pairs([paragraph]) if paragraph else []
        found = self._stated(span, pairs) or self._dictionary_gloss(span)
        if found:
            return found
        items = [i.strip() for i in _LIST_SEPARATORS.split(span) if i and i.strip()]
        if len(items) < 2:
            return None
        glossed = [self._stated(i, pairs) or self._dictionary_gloss(i) for i in items]
        return _english_list([g for g in glossed if g]) if all(glossed) else None


def _first_sense(senses: Sequence[str]) -> str | None:
    for sense in senses:
        s = sense.split(";")[0].strip()
        if s and not _NOT_A_TRANSLATION.match(s):
            return s
    return None


def _english_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
