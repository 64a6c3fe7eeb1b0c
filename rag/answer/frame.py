"""The English frame of an answer to an English question over Chinese paragraphs: the words the
system itself writes around the source's, always in English.

- :func:`lead_in`: the one sentence before quoted source sentences (the extractive answer):
  "On the chairman of the Hong Kong Productivity Council, the source says:";
- :func:`question_topic`: what a question asks about, as a noun phrase taken from its own words.

One rule for every English answer that quotes Chinese text: the system's prose is English and
built from the question; the quotes are the source's sentences, verbatim and cited.
"""

from __future__ import annotations

import re

# "Who is X?", "What are X?", "What's X?": X is what the question asks about.
_COPULAR = re.compile(r"^(?:who|what)(?:\s+(?:is|are|was|were)|'s|’s)\s+(?P<topic>.+)$", re.IGNORECASE)
_TELL = re.compile(r"^(?:tell\s+me\s+about|describe|explain|what\s+about)\s+(?P<topic>.+)$", re.IGNORECASE)
_HOW_MANY = re.compile(r"^how\s+(?P<kind>many|much)\s+(?P<what>.+?)\s+(?:does|do|did|is|are|was|were|will|would|has"
                       r"|have|had|can|could)\s+(?P<rest>.+)$", re.IGNORECASE)
# A copular topic that is a clause, not a noun phrase ("Who was appointed ...", "What is being done").
_NOT_A_NOUN = re.compile(r"^(?:\w+(?:ed|ing)|being|been|there|it|responsible|in|at|on|by|for|to|from|going)\b",
                         re.IGNORECASE)
_IRREGULAR_PARTICIPLE = frozenset("built chosen done given known led made meant paid put run said seen set "
                                  "shown sold spent taken told won written".split())
MAX_TOPIC_WORDS = 14
MAX_QUOTED_WORDS = 24


def _clean(question: str) -> str:
    return " ".join(question.split()).strip().rstrip("?？.!。！ ").strip()


def question_topic(question: str) -> str | None:
    """What ``question`` asks about, as a noun phrase of its own words; None when it is not
    that shape. "Who is the chairman of HKPC?" -> "the chairman of HKPC", "How many centres does
    HKPC run?" -> "the number of centres", "How much will HKPC invest?" -> None."""
    q = _clean(question)
    m = _COPULAR.match(q) or _TELL.match(q)
    if m:
        topic = m.group("topic")
        first = topic.split()[0].lower()
        if _NOT_A_NOUN.match(topic) or first in _IRREGULAR_PARTICIPLE:
            return None
    else:
        m = _HOW_MANY.match(q)
        if m is None or len(m.group("what").split()) > 6:
            return None
        topic = f"the {'number' if m.group('kind').lower() == 'many' else 'amount'} of {m.group('what')}"
    if len(topic.split()) > MAX_TOPIC_WORDS:
        return None
    return topic


def lead_in(question: str, sources: int = 1) -> str:
    """The English sentence before the quoted source sentences, naming what they answer:
    "On the chairman of HKPC, the source says: ", or with the question quoted when it has no
    noun phrase to name ("On the question “How much will HKPC invest?”, the sources say: ")."""
    says = "the source says" if sources <= 1 else "the sources say"
    topic = question_topic(question)
    if topic:
        return f"On {topic}, {says}: "
    q = _clean(question)
    if q and len(q.split()) <= MAX_QUOTED_WORDS:
        return f"On the question “{q}?”, {says}: "
    return f"In answer to the question, {says}: "
