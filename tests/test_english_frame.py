"""English answers over Chinese paragraphs: the system's own words are English (a lead-in named
from the question, a template frame), the source's words are quoted verbatim and cited."""

from __future__ import annotations

import re

import pytest

from rag.answer.abstain import ABSTAIN_MESSAGES
from rag.answer.compose import answer_from_hits, answer_steps
from rag.answer.frame import (
    lead_in,
    locate_span,
    question_topic,
    say_span,
    template_sentence,
    trim_span,
)
from rag.answer.lexicon import Lexicon
from rag.answer.steps import Draft, Final, Pending, Piece, final_answer
from rag.answer.written.checks import check_sentence, own_words, written_in_english
from rag.answer.written.framed import EXTRACT_SYSTEM, parse_span
from rag.index.gloss import Glossary, Senses
from rag.llm.judge import REASONS
from rag.question import Question
from rag.text.normalise import Normaliser
from rag.types import FALLBACK_NO_SPAN, FRAME_TEMPLATE, Hit
from tests.llm_stub import LLMStub
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


# -- the template frame ------------------------------------------------------------------------

PARAGRAPH = ("生產力局主席陳祖恒表示，生產力局今年將投入330億港元，設立超過50條智能生產線，"
             "重點發展生物科技、人工智能和微電子。由香港網絡安全事故協調中心(HKCERT)負責保安。")


def _lexicon() -> Lexicon:
    normaliser = Normaliser()
    glossary = Glossary()
    glossary.add("陳祖恒", ["Sunny Chan"], "test", normaliser)
    glossary.add("生產力局", ["Hong Kong Productivity Council", "HKPC"], "test", normaliser)
    senses = Senses({"生物科技": ["biotechnology"], "人工智能": ["artificial intelligence; AI"],
                     "微电子": ["microelectronics"], "智能": ["intelligent"], "生产线": ["assembly line"]}, "test")
    return Lexicon(normaliser, glossary, senses=senses)


def test_a_span_is_found_script_blind_and_shown_as_the_paragraph_writes_it() -> None:
    start, end = locate_span("陈祖恒", PARAGRAPH) or (0, 0)
    assert PARAGRAPH[start:end] == "陳祖恒"
    assert locate_span("hkcert", PARAGRAPH) is not None
    assert locate_span("Sunny Chan", PARAGRAPH) is None and locate_span("", PARAGRAPH) is None
    assert locate_span("李大文", PARAGRAPH) is None
    text = "面積達3,000㎡的新廠房"  # NFKC makes ㎡ two characters: the original window is found
    s, e = locate_span("新廠房", text) or (0, 0)
    assert text[s:e] == "新廠房"
    assert trim_span("「陳祖恒」[1]。") == "陳祖恒"


def test_the_english_of_a_span_comes_only_from_glossary_corpus_or_dictionary() -> None:
    lx = _lexicon()
    assert lx.gloss("陳祖恒", PARAGRAPH) == "Sunny Chan"  # the glossary
    assert lx.gloss("陈祖恒") == "Sunny Chan"  # script-blind
    assert lx.gloss("香港網絡安全事故協調中心", PARAGRAPH) == "HKCERT"  # the paragraph's own English
    assert lx.gloss("人工智能") == "artificial intelligence"  # CC-CEDICT, its first sense
    assert lx.gloss("智能生產線") == "intelligent assembly line"  # word by word, every word known
    assert lx.gloss("生物科技、人工智能和微電子") == "biotechnology, artificial intelligence and microelectronics"
    assert lx.gloss("李大文") is None  # a name no source gives: no English made up
    assert lx.gloss("生物科技、李大文") is None  # a list with an item no source gives
    assert lx.gloss("HKPC") is None


def test_say_span_gives_numbers_in_english_and_names_with_their_gloss() -> None:
    assert say_span("330億港元", None, PARAGRAPH) == "HK$33 billion (330億港元)"
    assert say_span("超過50條", None, PARAGRAPH) == "more than 50 (超過50條)"
    assert say_span("陳祖恒", "Sunny Chan", PARAGRAPH) == "陳祖恒 (Sunny Chan)"
    assert say_span("陳祖恒", None, PARAGRAPH) == "陳祖恒"
    assert say_span("50", None, "50") == "50"


@pytest.mark.parametrize(
    ("question", "span", "expected"),
    [
        ("Who is the chairman of the Productivity Council?", "陳祖恒",
         "The chairman of the Productivity Council is 陳祖恒 (Sunny Chan) [1]."),
        ("Who chairs the Productivity Council?", "陳祖恒", "陳祖恒 (Sunny Chan) chairs the Productivity Council [1]."),
        ("How many smart production lines will be set up?", "超過50條",
         "The number of smart production lines is more than 50 (超過50條) [1]."),
        ("How much will the council invest this year?", "330億港元",
         "On the question “How much will the council invest this year?”, the source gives "
         "HK$33 billion (330億港元) [1]."),
        ("What are the focus areas?", "生物科技、人工智能和微電子",
         "The focus areas are 生物科技、人工智能和微電子 (biotechnology, artificial intelligence and "
         "microelectronics) [1]."),
    ],
)
def test_template_frame_is_english_around_the_verbatim_span_and_passes_the_checks(
    question: str, span: str, expected: str
) -> None:
    lx = _lexicon()
    sentence = template_sentence(question, say_span(span, lx.gloss(span, PARAGRAPH), PARAGRAPH), 1)
    assert sentence == expected
    assert span in sentence and written_in_english(sentence)
    shown, verdict = check_sentence(sentence, [PARAGRAPH], question=question)
    assert verdict == "kept" and shown == sentence


# -- extract then frame, with a scripted model (no real model) ----------------------------------

COUNCIL = Hit(
    para_id="hkpc#p1", doc_id="hkpc", title="生產力局", source="hkpc.txt", score=0.9,
    text=PARAGRAPH,
)


def _scripted(extracted: str, framed: str):
    def reply(body):
        return extracted if body["messages"][0]["content"] == EXTRACT_SYSTEM else framed
    return reply


@pytest.fixture
def stub():
    with LLMStub() as s:
        yield s


def _ask(stub, question: str, hits=None, **options):
    gen = settings(llm_base_url=stub.base_url, llm_model="stub-model", llm_timeout_s=5.0)
    return list(answer_steps(Question.make(question), hits or [COUNCIL, ITIB], gen, lexicon=_lexicon(), **options))


def test_the_model_extracts_the_name_and_frames_it_in_english(stub) -> None:
    stub.reply = _scripted("[1] 陈祖恒", "The chairman of the Productivity Council is 陳祖恒 (Sunny Chan) [1].")
    steps = _ask(stub, "Who is the chairman of the Productivity Council?")
    assert isinstance(steps[0], Draft) and isinstance(steps[-1], Final)
    ans = final_answer(steps)
    assert ans.mode == "generated" and ans.warnings == ()
    # the frame, then the source sentence that holds the span, verbatim and cited
    assert ans.answer == ("The chairman of the Productivity Council is 陳祖恒 (Sunny Chan) [1]. 「生產力局主席陳祖恒表示，"
                          "生產力局今年將投入330億港元，設立超過50條智能生產線，重點發展生物科技、人工智能和微電子。」[1]")
    assert "".join(s.text for s in steps if isinstance(s, Piece)) == ans.answer  # the streaming contract
    assert any(isinstance(s, Pending) and s.text for s in steps)
    assert [c.para_id for c in ans.citations] == [COUNCIL.para_id]
    assert not CJK.search(own_words(ans.answer).replace("陳祖恒", ""))
    assert ans.timings_ms["first_token"] <= ans.timings_ms["first_shown"]


def test_a_frame_that_fails_its_checks_gives_way_to_the_template(stub) -> None:
    # the model drops the bound of 超過50條: the number check removes its sentence
    stub.reply = _scripted("[1] 超過50條", "The council will set up 50 smart production lines [1].")
    ans = final_answer(_ask(stub, "How many smart production lines will be set up?"))
    assert ans.mode == "generated"
    assert ans.answer.startswith("The number of smart production lines is more than 50 (超過50條) [1]. 「")
    assert [w.code for w in ans.warnings] == [FRAME_TEMPLATE]
    # a frame that leaves the answer out, or is not English, gives way too
    for framed in ("The chairman is Chen Zuheng [1].", "生產力局主席是陳祖恒。[1]", ""):
        stub.reply = _scripted("[1] 陳祖恒", framed)
        ans = final_answer(_ask(stub, "Who is the chairman of the Productivity Council?"))
        assert ans.answer.startswith("The chairman of the Productivity Council is 陳祖恒 (Sunny Chan) [1]."), framed
        assert FRAME_TEMPLATE in [w.code for w in ans.warnings]


def test_a_list_and_a_sum_of_money_keep_the_source_words(stub) -> None:
    stub.reply = _scripted("[1] 生物科技、人工智能和微電子", "It will focus on AI [1].")
    ans = final_answer(_ask(stub, "What are the focus areas?"))
    assert ans.answer.startswith("The focus areas are 生物科技、人工智能和微電子 (biotechnology, artificial "
                                 "intelligence and microelectronics) [1].")
    stub.reply = _scripted("[1] 330億港元", "The council will invest HK$33 billion (330億港元) this year [1].")
    ans = final_answer(_ask(stub, "How much will the council invest this year?"))
    assert ans.answer.startswith("The council will invest HK$33 billion (330億港元) this year [1].")
    assert ans.warnings == ()


def test_a_span_not_in_the_paragraphs_falls_back_to_the_english_extractive_answer(stub) -> None:
    for extracted in ("[1] Sunny Chan", "NONE", "[1] 李大文", "[1] " + "很長" * 50):
        stub.reply = _scripted(extracted, "The chairman is Sunny Chan [1].")
        ans = final_answer(_ask(stub, "Who is the chairman of the Productivity Council?"))
        assert ans.mode == "extractive" and [w.code for w in ans.warnings] == [FALLBACK_NO_SPAN]
        assert ans.answer.startswith("On the chairman of the Productivity Council, the source")
        assert "untranslated" not in ans.answer


def test_the_span_may_come_from_another_paragraph_than_the_one_named() -> None:
    q = Question.make("Who heads the bureau?")
    span = parse_span("[1] 孫東", [COUNCIL, ITIB], q)
    assert span is not None and span.n == 2 and ITIB.text[span.start:span.end] == "孫東"
    assert parse_span("Source 2: 「孫東」。", [COUNCIL, ITIB], q) == span
    assert parse_span("", [COUNCIL, ITIB], q) is None


def test_chinese_questions_and_the_free_form_option_are_not_framed(stub) -> None:
    stub.reply = "生產力局主席是陳祖恒。[1]"
    ans = final_answer(_ask(stub, "生產力局主席是誰？"))
    assert ans.mode == "generated" and ans.answer.startswith("生產力局主席是陳祖恒。[1]")
    assert all(r["messages"][0]["content"] != EXTRACT_SYSTEM for r in stub.requests)
    stub.reply = "The chairman of the Productivity Council is 陳祖恒 [1]."
    ans = final_answer(_ask(stub, "Who is the chairman of the Productivity Council?", english_frame=False))
    assert ans.answer.startswith("The chairman of the Productivity Council is 陳祖恒 [1].")
    assert all(r["messages"][0]["content"] != EXTRACT_SYSTEM for r in stub.requests)
