"""English text: stop words, the stemmers and the gloss's English terms.

Two stemmers, named by role:

- :func:`light_stem`, the normaliser's (``"english": "lower+light-stem"`` in the index
  manifest): BM25 tokens and matching units. Plurals and common verb forms only.
- :func:`snowball_stem`, the English gloss's (Snowball / Porter 2 via PyStemmer, after
  British -> American spelling): glosses, glossaries and English questions.

and :func:`spelling_variants`, the forms the query translation looks a word up under in the
reversed CC-CEDICT (rag/retrieval/crosslingual.py).

They are kept apart on purpose: moving BM25 and the units to Snowball changes their tokens,
which needs an index rebuild and an eval run to show it does no harm.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import Any

# Function words that carry no topic; a bigram made of one of these is too common to count.
EN_STOPWORDS = frozenset(
    """a an the of to in on at by for with from as and or but not no is are was were be been being
    do does did has have had what which who whom whose when where why how that this these those it its
    they them their there here about into than then so such can could would should will shall may might
    must i you he she we our your his her my me us any some all much many more most other also just
    only very per if tell say said according""".split()
)
# Dictionary filler: words of CC-CEDICT senses that match everything or nothing in a gloss.
GLOSS_FILLER = frozenset(
    "sb sth sb's sth's one's oneself someone something etc e.g i.e lit fig esp used kind type form "
    "make get give take put one person thing matter way also very".split()
)

_EN_WORD = re.compile(r"^[a-z][a-z'-]*$")
_GLOSS_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# A word as a reader counts them in written English: "Hong Kong’s" is two, "well-known" one.
_WRITTEN_WORD = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")


def written_words(text: str) -> list[str]:
    """The English words of ``text`` as a reader counts them (inner apostrophes and hyphens kept)."""
    return _WRITTEN_WORD.findall(text)


def light_stem(word: str) -> str:
    """A light English stemmer: enough for plurals and common verb forms."""
    if len(word) <= 3 or not _EN_WORD.match(word):
        return word
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            stem = word[: len(word) - len(suffix)] + repl
            if suffix in ("ing", "ed") and len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                stem = stem[:-1]  # running -> run, stopped -> stop
            return stem
    return word


def spelling_variants(word: str) -> list[str]:
    """``word`` and the forms a dictionary may list it under (singular, stem, -ize spelling):
    the query translation looks each up (it matches dictionary keys, so it guesses widely)."""
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


# British -> American spelling, applied before stemming, to glosses, glossaries and questions
# alike (CC-CEDICT mixes both; users write both). Whole words first, then suffix rules.
_US_WORDS = {
    "centre": "center", "centres": "centers", "metre": "meter", "metres": "meters", "litre": "liter",
    "theatre": "theater", "theatres": "theaters", "fibre": "fiber", "calibre": "caliber",
    "programme": "program", "programmes": "programs", "catalogue": "catalog", "dialogue": "dialog",
    "defence": "defense", "offence": "offense", "licence": "license", "pretence": "pretense",
    "colour": "color", "colours": "colors", "honour": "honor", "labour": "labor", "favour": "favor",
    "behaviour": "behavior", "neighbour": "neighbor", "harbour": "harbor", "rumour": "rumor",
    "flavour": "flavor", "humour": "humor", "endeavour": "endeavor", "armour": "armor", "vigour": "vigor",
    "grey": "gray", "tyre": "tire", "tyres": "tires", "aluminium": "aluminum", "cheque": "check",
    "jewellery": "jewelry", "plough": "plow", "mould": "mold", "storey": "story", "sceptical": "skeptical",
    "analyse": "analyze", "analysed": "analyzed", "analysing": "analyzing", "paralyse": "paralyze",
    "ageing": "aging", "judgement": "judgment", "enrol": "enroll", "fulfil": "fulfill", "skilful": "skillful",
    "travelled": "traveled", "travelling": "traveling", "traveller": "traveler", "modelling": "modeling",
    "modelled": "modeled", "labelled": "labeled", "cancelled": "canceled", "fuelled": "fueled",
    "counselling": "counseling", "counsellor": "counselor", "signalling": "signaling",
}
_US_SUFFIX = (
    ("isations", "izations"), ("isation", "ization"), ("ised", "ized"), ("ises", "izes"), ("ising", "izing"),
    ("iser", "izer"), ("isers", "izers"), ("ise", "ize"), ("yse", "yze"), ("ysed", "yzed"), ("ours", "ors"),
)
# -ise words that are not the -ize suffix (kept, so "enterprise" does not become "enterprize").
_ISE_KEEP = frozenset(
    "advise advised advises advising arise arises arising comprise comprises comprised comprising compromise "
    "compromised devise devised enterprise enterprises exercise exercised exercises expertise franchise "
    "improvise merchandise noise otherwise precise premise premises promise promised promises raise raised "
    "raises raising revise revised rise rises rising supervise supervised supervises supervising surmise "
    "surprise surprised televise wise concise disguise chinese cruise cruises paradise praise praised "
    "reprise treatise incise excise demise despise ".split()
)
_OUR_KEEP = frozenset("our ours four hour hours tour tours your yours pour pours flour sour dour".split())


def american(word: str) -> str:
    """British -> American spelling of one lower-case word (unknown words unchanged)."""
    if word in _US_WORDS:
        return _US_WORDS[word]
    if len(word) < 5 or word in _ISE_KEEP or word in _OUR_KEEP:
        return word
    for gb, us in _US_SUFFIX:
        if word.endswith(gb):
            if gb == "ours" and not word.endswith(("iours", "bours", "vours", "mours", "lours", "nours")):
                return word
            return word[: -len(gb)] + us
    return word


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    try:
        import Stemmer
    except ImportError as exc:  # a declared dependency; say how to fix a broken environment
        raise ImportError("the English gloss needs PyStemmer: pip install PyStemmer") from exc
    return Stemmer.Stemmer("english")


def stemmer_name() -> str:
    """The Snowball stemmer and its library version, as the gloss index records it."""
    try:
        from importlib.metadata import version

        return f"snowball-english (PyStemmer {version('PyStemmer')})"
    except Exception:
        return "snowball-english (PyStemmer)"


_stem_lock = threading.Lock()


@lru_cache(maxsize=200_000)
def snowball_stem(word: str) -> str:
    """The Snowball (Porter 2) stem of one lower-case word, spelt the American way first."""
    with _stem_lock:  # a Stemmer object is not safe to share between threads
        return str(_stemmer().stemWord(american(word)))


def english_terms(text: str, *, drop: frozenset[str] = frozenset()) -> list[str]:
    """BM25 terms of English text: NFKC, lower case, words (digits kept), stop and filler words
    dropped, British -> American spelling, Snowball stems. The same for glosses and questions."""
    text = unicodedata.normalize("NFKC", text).lower()
    out = []
    for w in _GLOSS_WORD.findall(text):
        if w in EN_STOPWORDS or w in GLOSS_FILLER or w in drop or (len(w) == 1 and not w.isdigit()):
            continue
        out.append(snowball_stem(w))
    return out
