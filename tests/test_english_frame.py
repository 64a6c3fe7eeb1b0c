"""English answers over Chinese paragraphs: the system's own words are English (a lead-in named
from the question, a template frame), the source's words are quoted verbatim and cited."""

from __future__ import annotations

import re

import pytest

from rag.answer.abstain import ABSTAIN_MESSAGES
from rag.answer.compose import answer_from_hits
from rag.answer.frame import lead_in, question_topic
from rag.answer.written.checks import own_words
from rag.llm.judge import REASONS
from rag.question import Question
from tests.test_answer import HKPC, ITIB, WEATHER, settings

CJK = re.compile(r"[\u3400-\u9fff]")


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("Who is the chairman of the Hong Kong Productivity Council?", "the chairman of the Hong Kong Productivity Council"),
        ("What is HKPC's budget?", "HKPC's budget"),
        ("What's the New Industrialisation Acceleration Scheme", "the New Industrialisation Acceleration Scheme"),
        ("What are the three pillars of new industrialisation?", "the three pillars of new industrialisation"),
        ("How many research centres does HKPC run?", "the number of research centres"),
        ("How much funding did the scheme give?", "the amount of funding"),
        ("Tell me about the Microelectronics Research and Development Institute",
         "the Microelectronics Research and Development Institute"),
        ("What is 新質生產力?", "新質生產力"),
        ("Who was appointed as director?", None),  # a clause, not a noun phrase
        ("What is being done about AI?", None),
        ("When did the centre open?", None),
        ("How much will HKPC invest?", None),
    ],
)
def test_question_topic(question: str, topic: str | None) -> None:
    assert question_topic(question) == topic


def test_lead_in_names_the_topic_or_quotes_the_question() -> None:
    assert lead_in("Who is the chairman of the Productivity Council?") == (
        "On the chairman of the Productivity Council, the source says: ")
    assert lead_in("When did the centre open?", 2) == "On the question “When did the centre open?”, the sources say: "
    assert lead_in("why " * 40).startswith("In answer to the question, the source says")


def test_english_extractive_answer_over_chinese_is_framed_in_english() -> None:
    q = Question.make("Who is the chairman of the Productivity Council?")
    ans = answer_from_hits(q, [HKPC], settings())
    assert not ans.abstained and ans.mode == "extractive"
    assert ans.answer.startswith("On the chairman of the Productivity Council, the source says: 「")
    assert "untranslated" not in ans.answer
    # the quoted sentences are the paragraph's own, verbatim, each with its marker
    quotes = re.findall(r"「(.+?)」\[(\d+)\]", ans.answer)
    assert quotes and all(text in HKPC.text and n == "1" for text, n in quotes)
    assert not CJK.search(own_words(ans.answer))  # no Chinese prose of the system's own


def test_english_extractive_answer_over_several_sources_says_sources() -> None:
    q = Question.make("How does the acceleration scheme fund companies?")
    ans = answer_from_hits(q, [ITIB, HKPC], settings())
    assert "the source" in ans.answer and "untranslated" not in ans.answer
    assert not CJK.search(own_words(ans.answer))


def test_english_abstentions_are_english() -> None:
    assert not CJK.search(ABSTAIN_MESSAGES["en"]) and not CJK.search(REASONS["en"])
    q = Question.make("What will the weather be like on the moon next year?")
    ans = answer_from_hits(q, [WEATHER.__class__(**{**WEATHER.__dict__, "score": 0.0, "relevance": 0.0})], settings())
    assert ans.abstained and ans.answer == ABSTAIN_MESSAGES["en"]
    assert not CJK.search(ans.answer) and not CJK.search(ans.abstain_reason or "")
