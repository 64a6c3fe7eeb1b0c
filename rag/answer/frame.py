"""The English frame of an answer to an English question over Chinese paragraphs: the words the
system itself writes around the source's, always in English.

- :func:`lead_in`: the one sentence before quoted source sentences (the extractive answer):
  "On the chairman of the Hong Kong Productivity Council, the source says:";
- :func:`question_topic`: what a question asks about, as a noun phrase taken from its own words;
- :func:`template_sentence`: one English sentence around a span copied from a cited paragraph
  (:func:`locate_span` checks it is there, :func:`say_span` says it: a number in English, a
  name with its English gloss), the frame a model's own falls back to.

One rule for every English answer that quotes Chinese text: the system's prose is English and
built from the question; the quotes are the source's sentences, verbatim and cited.
"""

from __future__ import annotations

import re

from rag.answer.written.numbers import english_number, number_faithful
from rag.text.normalise import Normaliser
from rag.text.sentences import MARKER, matching_form, split_sentences

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


# ---------------------------------------------------------------------------------------------
# The template frame: one English sentence around a span copied from a cited paragraph, used
# when a language model's own frame fails its checks. Its words are the question's, the span's
# (verbatim) and the span's English from the glossaries, the corpus or CC-CEDICT; nothing else.

_SUBJECT_QUESTION = re.compile(r"^who\s+(?!(?:is|are|was|were|did|does|do|will|would|has|have|had|can|could|should)\b)"
                               r"(?P<rest>\w+.*)$", re.IGNORECASE)
_COPULA = re.compile(r"^(?:who|what)\s+(?P<verb>is|are|was|were)\b", re.IGNORECASE)
_SPAN_TRIM = "「」『』“”\"'‘’《》()（）[]【】:：,，.。;；!！?？ \t\n"


def locate_span(span: str, text: str, normaliser: Normaliser | None = None) -> tuple[int, int] | None:
    """``[start, end)`` of ``span`` in ``text``, compared script-blind (NFKC, case, OpenCC: the
    matching form), or None when ``text`` does not hold it. ``text[start:end]`` is the span as
    the paragraph writes it (its script, its punctuation)."""
    want = matching_form(span.strip(), normaliser)
    if not want.strip():
        return None
    have = matching_form(text, normaliser)
    at = have.find(want)
    if at < 0:
        return None
    if len(have) == len(text):  # the usual case: one character for one
        return at, at + len(want)
    # NFKC changed some lengths (e.g. ㎡ -> m2): find the window of the original that normalises to it.
    for start in range(len(text)):
        for end in range(max(start + 1, start + len(want) - 3), min(len(text), start + len(want) + 3) + 1):
            if matching_form(text[start:end], normaliser) == want:
                return start, end
    return None


# Words that make a number a bound or an estimate (超過50條 is not 50): a number span taken
# without them is widened to take them in.
_BOUND_BEFORE = ("不超過", "不超过", "超過", "超过", "逾", "多於", "多于", "高於", "高于", "至少", "不少於", "不少于",
                 "大約", "大约", "約", "约", "接近", "將近", "将近", "近", "不足", "少於", "少于", "最多")
_BOUND_AFTER = ("以上", "以下", "左右", "多", "餘", "余")


def widen_number_span(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` of a number in ``text`` widened over the bound words around it
    (``330億元`` in ``增加至超過330億元`` -> ``超過330億元``), as long as it still reads as one
    number; other spans are returned as they are."""
    if english_number(text[start:end]) is None:
        return start, end
    before = next((w for w in _BOUND_BEFORE if text[:start].endswith(w)), "")
    after = next((w for w in _BOUND_AFTER if text[end:].startswith(w)), "")
    for a, b in ((start - len(before), end + len(after)), (start - len(before), end), (start, end + len(after))):
        if (a, b) != (start, end) and english_number(text[a:b]) is not None:
            return a, b
    return start, end


# "Which X …?" / "In which fields …?": a question that asks for things, not a count.
_WHICH_THINGS = re.compile(r"^(?:(?:in|on|for|from|at|to|with|by|of)\s+)?(?:which|what)\b(?!\s+(?:is|was)\s+the\s+"
                           r"(?:number|amount|total|value|figure)\b)", re.IGNORECASE)
_CLAUSE = re.compile(r"[^，。；！？,;!?：:\n]+")
_LIST_LEAD = re.compile(r"包括|包含|涵蓋|涵盖|例如|比如|如|在|有|為|为|是|於|于")
_LIST_END = re.compile(r"等等|等")
_COUNT = re.compile(r"\s*(?:超過|超过|逾|約|约|近)?[\d〇零一二兩两三四五六七八九十百千]")
MAX_LIST_LEAD = 8  # without a lead word, a list starts at most this far into its clause


def widen_to_list(question: str, text: str, start: int, end: int) -> tuple[int, int]:
    """A question that asks which things, answered with a count or a short word (``130家``,
    ``三方``), gets the list the same sentence gives instead (``寧德時代、比亞迪、…、思科``):
    the clause of that sentence with three or more items separated by 、, from its lead word
    (包括, 涵蓋, 在 …) to its 等. Any other span is returned as it is."""
    said = text[start:end]
    counted = english_number(said) is not None or _COUNT.match(said) is not None  # 130家, 25 個行業
    if not _WHICH_THINGS.match(question.strip()) or not (counted or len(said.strip()) <= 2):
        return start, end
    sentence = next(((a, b) for a, b in split_sentences(text) if a <= start < b), None)
    if sentence is None:
        return start, end
    best: tuple[int, int] | None = None
    for m in _CLAUSE.finditer(text, *sentence):
        clause = m.group()
        if clause.count("、") < 2:
            continue
        first = clause.index("、")
        leads = list(_LIST_LEAD.finditer(clause, 0, first))
        head = leads[-1].end() if leads else 0
        if not leads and first > MAX_LIST_LEAD:
            continue
        tail = _LIST_END.search(clause, clause.rindex("、"))
        a, b = m.start() + head, m.start() + (tail.start() if tail else len(clause))
        if best is None or abs(a - start) < abs(best[0] - start):
            best = (a, b)
    return best if best is not None and text[best[0]:best[1]].strip() else (start, end)


def trim_span(span: str) -> str:
    """A span as a model writes it, without its quotes, markers and trailing punctuation."""
    return MARKER.sub("", span).strip(_SPAN_TRIM)


def say_span(span: str, gloss: str | None, paragraph: str) -> str:
    """The span as an English sentence shows it: a number in English with the source's words
    after it (``more than 50 (超過50條)``), when the checks read it back to the paragraph; else
    the span with its English gloss (``陳祖恒 (Sunny Chan)``), or the span alone."""
    english = english_number(span)
    if english and number_faithful(english, paragraph):
        return english if english == span else f"{english} ({span})"
    if gloss and gloss.casefold() != span.casefold():
        return f"{span} ({gloss})"
    return span


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:] if text[:1].islower() else text


def template_sentence(question: str, said: str, n: int) -> str:
    """One English sentence answering ``question`` with ``said`` (:func:`say_span`), citing [n]:
    "Who is X?" -> "X is <said> [n].", "Who <verb>s X?" -> "<said> <verb>s X [n].",
    "How many X …?" -> "The number of X is <said> [n].", else "The source's answer is <said> [n]."
    (its words are the question's; the check still reads it against the source)."""
    q = _clean(question)
    topic = question_topic(q)
    if topic:
        m = _COPULA.match(q)
        verb = m.group("verb").lower() if m else "is"
        return f"{_sentence_case(topic)} {verb} {said} [{n}]."
    m = _SUBJECT_QUESTION.match(q)
    if m:
        return f"{said} {m.group('rest')} [{n}]."
    # No noun phrase to name: the question is not quoted, since quotes and its question mark
    # would read as a quoted name and a sentence end to the checks.
    return f"The source's answer is {said} [{n}]."
