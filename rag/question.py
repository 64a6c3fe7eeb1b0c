"""The question, made once where it enters (the service) and only read after that.

A :class:`Question` carries the text as asked and the text retrieval uses (a dependent
follow-up carries the previous question too), and everything later steps derive from them:
the language the answer is written in, the CJK share that picks retrieval's channels, the
normalised BM25 tokens, the matching units that choose and highlight sentences. Each is
computed once, the first time a step asks for it; retrieval, the answer and the display read
them and detect or normalise nothing again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rag.text.language import ZH_POINTING_CHARS, ZH_WH, detect_lang
from rag.text.normalise import Normaliser, cjk_ratio
from rag.text.sentences import SENTENCE_ENDS, content_words, question_terms, question_units

# What makes a follow-up lean on the turn before it (see ``depends_on_history``).
# Chinese words in which a pointing character does not point back: 其他 "other", 應該 "should",
# 因此 "therefore", 那麼多 "so many" ... They are removed before the pointers are looked for.
_ZH_FIXED = re.compile(
    r"其他|其它|其實|其实|其次|其餘|其余|尤其|極其|极其|與其|与其|應該|应该|活該|活该"
    r"|因此|此外|如此|彼此|從此|从此|特此|那麼|那么"
)
_ZH_POINTER = re.compile(f"[{ZH_POINTING_CHARS}]|上述|前者|後者|后者")
_ZH_LEAD = re.compile(r"^(?:那|還有|还有|另外|至於|至于|然後|然后|以及)")
_ZH_BARE_NE = re.compile(rf"呢\s*[{re.escape(SENTENCE_ENDS)}.]*\s*$")  # 呢 ending the question
_EN_POINTER = re.compile(
    r"\b(?:it|its|itself|they|them|their|theirs|he|him|his|she|her|hers|these|those|else)\b"
    r"|\bthis\b(?!\s+(?:year|month|week|quarter|decade|century)\b)"
    # "that" points back as a pronoun or determiner ("about that", "did that centre ..."),
    # not as a relative pronoun or conjunction ("the centre that opened", "say that ...").
    r"|(?:^|\b(?:about|of|for|from|with|on|in|by|after|before|like|than|is|was|are|were|does|did|do"
    r"|will|can|has|had|have)\s+)that\b|\bthat\W*$",
    re.IGNORECASE,
)
_EN_LEAD = re.compile(r"^\W*(?:and|also|then|so|what about|how about|as for|same for|but)\b", re.IGNORECASE)
# A lone content word stands alone when it names something: an acronym, a number, a quoted
# term, or a Chinese word of three or more characters (陳祖恒, 生產力局); 主席 or "funding" do not.
_NAMED = re.compile(r"(?<![A-Za-z0-9])[A-Z][A-Z0-9&-]+(?![A-Za-z0-9])|\d|[「『“《\"][^」』”》\"]+[」』”》\"]")
_LONG_CJK_WORD = re.compile(r"^[\u3400-\u9fff]{3,}$")


def depends_on_history(question: str, normaliser: Normaliser | None = None) -> str | None:
    """Why ``question`` cannot stand alone after a conversation, or None when it can.

    A question depends on the turn before it when one of these holds, in 繁體, 简体 or English:

    - ``reference``: it points back with a pronoun or demonstrative: 它/他/她/其/這/这/那/該/该/
      此/上述/前者/後者 (not inside fixed words such as 其他, 應該, 因此, 那麼), or it, its,
      they, them, their, he, she, his, her, these, those, else, "this" (not "this year"),
      "that" as a pronoun or determiner ("about that", "did that centre"; not "the centre that
      opened" or "say that").
    - ``ellipsis``: it names only a new facet of the topic: it ends in a bare 呢 with no
      question word ("那資助呢？" — with a question word, as in "為什麼要推動呢", 呢 only
      softens a complete question), or it opens with 那/還有/另外/至於/然後/以及, "and",
      "also", "then", "so", "but", "what about", "how about", "as for", "same for".
    - ``too short``: it has no content word of its own ("為什麼？", "How much?"), or one
      generic word ("主席是誰？", "Who is the chairman?"). One word that names something (an
      acronym such as FLAIR, a number, a quoted term, a Chinese word of three or more
      characters such as 陳祖恒) is a topic of its own.

    Anything else is a new, standalone question, however short: a change of topic such as
    "新型工業加速計劃資助甚麼？" after a question about the 生產力局 keeps its own words only.
    Content words are read in ``normaliser``'s matching form (the index's; OpenCC t2s without one).
    """
    text = question.strip()
    zh = _ZH_FIXED.sub(" ", text)
    if _ZH_POINTER.search(zh) or _EN_POINTER.search(text):
        return "reference"
    if (_ZH_BARE_NE.search(text) and not ZH_WH.search(text)) or _ZH_LEAD.match(text) or _EN_LEAD.match(text):
        return "ellipsis"
    words = content_words(text, normaliser)
    if not words:
        return "too short"
    if len(words) == 1 and not (_NAMED.search(text) or _LONG_CJK_WORD.match(words[0])):
        return "too short"
    return None


def contextualise(
    question: str, history: Sequence[dict[str, Any]] | None, normaliser: Normaliser | None = None
) -> str:
    """The text to retrieve with: the previous user question and ``question`` when
    ``question`` depends on the history (:func:`depends_on_history`), else ``question``."""
    if not history:
        return question
    previous = [m.get("content", "") for m in history if isinstance(m, dict) and m.get("role") == "user"]
    previous = [p for p in previous if isinstance(p, str) and p.strip()]
    if not previous or depends_on_history(question, normaliser) is None:
        return question
    return f"{previous[-1].strip()} {question}"


@dataclass(frozen=True)
class Question:
    """A question and what every step derives from it (each derived once, on first use)."""

    text: str  # as asked (validated at the boundary)
    search_text: str  # what retrieval uses: ``text``, the standalone rewrite, or the previous question and ``text``
    normaliser: Normaliser = field(compare=False, repr=False)
    rewritten: str | None = None  # the language model's standalone form of a follow-up

    @classmethod
    def make(
        cls, text: str, normaliser: Normaliser | None = None, history: Sequence[dict[str, Any]] | None = None,
        *, rewritten: str | None = None,
    ) -> Question:
        """The question ``text`` (already validated), in the conversation ``history``;
        ``rewritten``, when given, is what retrieval uses instead."""
        normaliser = normaliser or Normaliser()
        search = rewritten or contextualise(text, history, normaliser)
        return cls(text, search, normaliser, rewritten or None)

    @property
    def standalone(self) -> str:
        """The question as the judge and the answer writer read it: the rewrite of a follow-up,
        else the text as asked."""
        return self.rewritten or self.text

    @cached_property
    def lang(self) -> str:
        """The language of the text as asked: the answer's language."""
        return detect_lang(self.text)

    @cached_property
    def cjk(self) -> float:
        """CJK share of the retrieval text's letters: picks the channels and their weights."""
        return cjk_ratio(self.search_text)

    @cached_property
    def tokens(self) -> list[str]:
        """The retrieval text's BM25 tokens (the index's normaliser)."""
        return self.normaliser.tokenise(self.search_text)

    @cached_property
    def units(self) -> frozenset[str]:
        """Matching units of the question (its standalone form): which sentences answer it, which to highlight."""
        return question_units(self.standalone, self.normaliser)

    @cached_property
    def search_units(self) -> frozenset[str]:
        """Matching units of the retrieval text (its coverage in a paragraph, for relevance)."""
        return question_units(self.search_text, self.normaliser)

    @cached_property
    def content_words(self) -> tuple[str, ...]:
        """The retrieval text's content words (for relevance: words a paragraph lacks)."""
        return content_words(self.search_text, self.normaliser)

    @cached_property
    def gloss_terms(self) -> list[str]:
        """The retrieval text's English terms for the gloss channel."""
        return question_terms(self.search_text)
