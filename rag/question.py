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

from rag.text.language import detect_lang
from rag.text.normalise import Normaliser, cjk_ratio
from rag.text.sentences import question_units

# Follow-up questions lean on the previous turn: short, or pointing back with a demonstrative.
_ANAPHORA = re.compile(
    r"(^|[^\w])(那|這|这|該|该|其|它|他|她|它們|他們|她们|他们|此|上述|前者|後者|后者)"
    r"|\b(it|its|they|them|their|this|that|these|those|he|she|his|her)\b",
    re.IGNORECASE,
)


def contextualise(question: str, history: Sequence[dict[str, Any]] | None) -> str:
    """The text to retrieve with: a dependent follow-up gets the previous user question prepended."""
    if not history:
        return question
    previous = [m.get("content", "") for m in history if isinstance(m, dict) and m.get("role") == "user"]
    previous = [p for p in previous if isinstance(p, str) and p.strip()]
    if not previous:
        return question
    short = len(question) <= (24 if cjk_ratio(question) > 0.5 else 60)
    if short or _ANAPHORA.search(question):
        return f"{previous[-1].strip()} {question}"
    return question


@dataclass(frozen=True)
class Question:
    """A question and what every step derives from it (each derived once, on first use)."""

    text: str  # as asked (validated at the boundary)
    search_text: str  # what retrieval uses: ``text``, or the previous question and ``text``
    normaliser: Normaliser = field(compare=False, repr=False)

    @classmethod
    def make(
        cls, text: str, normaliser: Normaliser | None = None, history: Sequence[dict[str, Any]] | None = None
    ) -> Question:
        """The question ``text`` (already validated), in the conversation ``history``."""
        return cls(text, contextualise(text, history), normaliser or Normaliser())

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
        """Matching units of the text as asked: which sentences answer it, which to highlight."""
        return question_units(self.text)

    @cached_property
    def search_units(self) -> frozenset[str]:
        """Matching units of the retrieval text (its coverage in a paragraph, for relevance)."""
        return question_units(self.search_text)

    @cached_property
    def content_words(self) -> tuple[str, ...]:
        """The retrieval text's content words (for relevance: words a paragraph lacks)."""
        from rag.retrieval.relevance import content_words

        return content_words(self.search_text)

    @cached_property
    def gloss_terms(self) -> list[str]:
        """The retrieval text's English terms for the gloss channel."""
        from rag.retrieval.gloss import question_terms

        return question_terms(self.search_text)
