"""English answers over Chinese paragraphs: the system's own words are English (a lead-in named
from the question, a template frame), the source's words are quoted verbatim and cited."""

from __future__ import annotations

import re
from pathlib import Path

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
    widen_number_span,
    widen_to_list,
)
from rag.answer.lexicon import Lexicon
from rag.answer.steps import Draft, Final, Pending, Piece, final_answer
from rag.answer.written.checks import check_sentence, own_words, written_in_english
from rag.answer.written.framed import EXTRACT_SYSTEM, parse_span, unstated_names
from rag.index.gloss import Glossary, Senses
from rag.ingest.clean import clean_document
from rag.llm.judge import REASONS
from rag.question import Question
from rag.text.normalise import Normaliser
from rag.types import FALLBACK_NO_SPAN, FRAME_TEMPLATE, Hit
from tests.llm_stub import LLMStub
from tests.test_answer import HKPC, ITIB, WEATHER, settings

CJK = re.compile(r"[\u3400-\u9fff]")
ROOT = Path(__file__).resolve().parents[1]


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
    glossary.add("新型工業加速計劃", ["New Industrialisation Acceleration Scheme"], "test", normaliser)
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


@pytest.mark.parametrize(
    ("question", "span", "widened"),
    [
        ("Which companies opened offices in Hong Kong this year?", "130家", "寧德時代、比亞迪、百度、思科"),
        ("In which fields will the partners do research?", "三方", "算力、工業互聯網、智能制造"),
        ("Which industries are covered?", "25 個行業", "微電子、金屬、塑膠"),
        ("How many companies came?", "130家", "130家"),  # a count is asked for: no list
        ("Which companies came?", "創新科技及工業局", "創新科技及工業局"),  # a name is an answer
    ],
)
def test_a_which_question_answered_with_a_count_gets_the_list_of_its_sentence(question, span, widened) -> None:
    text = ("創新科技及工業局已引進超過130家企業，今年開業的企業包括寧德時代、比亞迪、百度、思科等。"
            "三方將在算力、工業互聯網、智能制造等領域進行研究。涵蓋微電子、金屬、塑膠等 25 個行業。")
    start = text.index(span)
    a, b = widen_to_list(question, text, start, start + len(span))
    assert text[a:b] == widened


def test_a_number_span_is_widened_over_its_bound() -> None:
    text = "研發總開支增加至超過330億元，現時有90多條生產線，約三成企業參與，設立生產線"
    for span, widened in (("330億元", "超過330億元"), ("90", "90多"), ("三成", "約三成"), ("生產線", "生產線")):
        start = text.index(span)
        a, b = widen_number_span(text, start, start + len(span))
        assert text[a:b] == widened


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
         "The source's answer is HK$33 billion (330億港元) [1]."),
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
    stub.reply = _scripted("陈祖恒 [1]", "The chairman of the Productivity Council is 陳祖恒 (Sunny Chan) [1].")
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
    for framed in ("The chairman is Chen Zuheng [1].", "生產力局主席是陳祖恒。[1]", "",
                   "The chairman of the 生產力局 is 陳祖恒 [1]."):  # Chinese besides the answer
        stub.reply = _scripted("[1] 陳祖恒", framed)
        ans = final_answer(_ask(stub, "Who is the chairman of the Productivity Council?"))
        assert ans.answer.startswith("The chairman of the Productivity Council is 陳祖恒 (Sunny Chan) [1]."), framed
        assert FRAME_TEMPLATE in [w.code for w in ans.warnings]


def test_the_template_is_shown_as_built_without_the_support_check(stub, monkeypatch) -> None:
    """The template holds the verbatim span of the paragraph it cites: a support check that reads
    the question's English words as claims (and would remove it) is not applied to it."""
    import rag.answer.written.framed as framed
    import rag.answer.written.stream as stream

    for module in (framed, stream):
        monkeypatch.setattr(module, "check_sentence", lambda sentence, *a, **k: (None, "removed"))
    stub.reply = _scripted("[1] 陳祖恒", "The chairman is Chen Zuheng [1].")
    ans = final_answer(_ask(stub, "Who is the chairman of the Productivity Council?"))
    assert ans.mode == "generated", ans.warnings
    assert ans.answer.startswith("The chairman of the Productivity Council is 陳祖恒 (Sunny Chan) [1]. 「生產力局主席陳祖恒")
    assert [w.code for w in ans.warnings] == [FRAME_TEMPLATE]
    assert [c.para_id for c in ans.citations] == [COUNCIL.para_id]
    # the model's own frame still goes through the check: removed here, the template stands in for it
    stub.reply = _scripted("[1] 陳祖恒", "The chairman of the Productivity Council is 陳祖恒 (Sunny Chan) [1].")
    ans = final_answer(_ask(stub, "Who is the chairman of the Productivity Council?"))
    assert [w.code for w in ans.warnings] == [FRAME_TEMPLATE]


def test_a_list_and_a_sum_of_money_keep_the_source_words(stub) -> None:
    stub.reply = _scripted("[1] 生物科技、人工智能和微電子", "It will focus on AI [1].")
    ans = final_answer(_ask(stub, "What are the focus areas?"))
    assert ans.answer.startswith("The focus areas are 生物科技、人工智能和微電子 (biotechnology, artificial "
                                 "intelligence and microelectronics) [1].")
    stub.reply = _scripted("[1] 330億港元", "The council will invest HK$33 billion (330億港元) this year [1].")
    ans = final_answer(_ask(stub, "How much will the council invest this year?"))
    assert ans.answer.startswith("The council will invest HK$33 billion (330億港元) this year [1].")
    assert ans.warnings == ()


OTHER_FUND = Hit(
    para_id="fund#p1", doc_id="fund", title="創科產業引導基金", source="fund.txt", score=0.9,
    text="政府將設立100億元的「創科產業引導基金」，引導市場資金投資策略性產業。",
)
SCHEME = Hit(
    para_id="scheme#p1", doc_id="scheme", title="新型工業加速計劃", source="scheme.txt", score=0.9,
    text="「新型工業加速計劃」以100億元資助企業在港設立智能生產設施。",
)


def test_names_of_the_glossaries_count_only_when_the_cited_paragraph_names_them() -> None:
    lexicon = _lexicon()
    sentence = "The new industrialisation acceleration scheme funds $10 billion [1]."
    assert list(lexicon.names_in(sentence)) == ["new industrialisation acceleration scheme"]
    assert unstated_names(sentence, OTHER_FUND.text, lexicon) == ["new industrialisation acceleration scheme"]
    assert unstated_names(sentence, SCHEME.text, lexicon) == []  # named in Chinese
    assert unstated_names(sentence, convert(SCHEME.text), lexicon) == []  # in the other script
    assert unstated_names("HKPC and Sunny Chan [1].", PARAGRAPH, lexicon) == []
    assert unstated_names("HKPC's HKPCs [1].", OTHER_FUND.text, lexicon) == ["HKPC"]  # whole words only
    assert unstated_names("The hkpc funds most of it [1].", OTHER_FUND.text, lexicon) == []  # an acronym in capitals only
    # the answer as shown is not a claim about the subject
    assert unstated_names("The answer is Sunny Chan [1].", OTHER_FUND.text, lexicon, besides=["Sunny Chan"]) == []


def convert(text: str) -> str:
    from rag.text.normalise import convert_script

    return convert_script(text, "t2s")


def test_a_frame_naming_what_its_paragraph_does_not_gives_way_to_a_neutral_template(stub) -> None:
    """The model restates the question's subject around a true number from a paragraph about
    another fund: the frame is refused, and the template does not name the subject either."""
    question = "How much does the New Industrialisation Acceleration Scheme fund?"
    stub.reply = _scripted("[1] 100億元", "The New Industrialisation Acceleration Scheme funds $10 billion [1].")
    ans = final_answer(_ask(stub, question, hits=[OTHER_FUND]))
    assert ans.mode == "generated"
    assert ans.answer.startswith("The source's answer is $10 billion (100億元) [1]. 「政府將設立100億元")
    assert [w.code for w in ans.warnings] == [FRAME_TEMPLATE]
    assert "New Industrialisation Acceleration Scheme" in ans.warnings[0].text
    # the paragraph that names the scheme keeps the model's frame
    ans = final_answer(_ask(stub, question, hits=[SCHEME]))
    assert ans.answer.startswith("The New Industrialisation Acceleration Scheme funds $10 billion [1].")
    assert ans.warnings == ()
    # a template of the question's own words is neutral too when its subject is not the paragraph's
    stub.reply = _scripted("[1] 陳祖恒", "The chairman is Chen Zuheng [1].")
    other = Hit(para_id="x#p1", doc_id="x", title="局長", source="x.txt", score=0.9, text="局長陳祖恒表示將投入資源。")
    ans = final_answer(_ask(stub, "Who is the chairman of the Hong Kong Productivity Council?", hits=[other]))
    assert ans.answer.startswith("The source's answer is 陳祖恒 (Sunny Chan) [1]."), ans.answer
    ans = final_answer(_ask(stub, "Who is the chairman of the Hong Kong Productivity Council?"))
    assert ans.answer.startswith("The chairman of the Hong Kong Productivity Council is 陳祖恒 (Sunny Chan) [1].")


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
    assert parse_span("[2]\n孫東\n", [COUNCIL, ITIB], q) == span  # the marker alone on its line
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


# -- the real model (marked `model`: loaded once per session) ----------------------------------


def _corpus_hit(name: str, needle: str) -> Hit:
    """The cleaned paragraph of ``corpus/name`` that holds ``needle``."""
    paragraphs = clean_document((ROOT / "corpus" / name).read_text(encoding="utf-8")).paragraphs
    n, text = next((i, p.text) for i, p in enumerate(paragraphs, 1) if needle in p.text)
    return Hit(para_id=f"{name}#p{n}", doc_id=name, text=text, score=0.9)


def _real_answer(local_judge, question: str, hit: Hit):
    from rag.llm.generate import LocalGenerator  # the engine: only with the model

    lexicon = Lexicon.from_report({"files": [str(ROOT / "corpus" / "glossary.tsv")]}, Normaliser())
    gen = LocalGenerator(local_judge.model, timeout_s=120)
    return final_answer(answer_steps(Question.make(question), [hit], settings(), generator=gen, lexicon=lexicon))


@pytest.mark.model
@pytest.mark.parametrize(
    ("question", "name", "needle", "kept"),
    [
        # a name
        ("Who is the chairman of the Federation of Hong Kong Industries?",
         "2023-hkcd-iforum-new-industrialisation.txt", "查毅超", ["查毅超"]),
        # a number with a magnitude and a bound: 超過330億元 is more than 33 billion
        ("How much was Hong Kong's total R&D expenditure in 2023?", "2024-itib-year-in-review.txt", "330億",
         ["33 billion|330億", "more than|超過"]),
        # a list
        ("In which five areas will the government push new industrialisation in Hong Kong?",
         "2023-hkcd-iforum-new-industrialisation.txt", "五大方面", ["人才", "基礎建設"]),
    ],
    ids=["name", "number", "list"],
)
def test_real_model_extracts_then_frames_in_english(local_judge, question, name, needle, kept) -> None:
    ans = _real_answer(local_judge, question, _corpus_hit(name, needle))
    own = own_words(ans.answer)
    assert ans.mode == "generated", ans.warnings
    assert written_in_english(ans.answer) and "untranslated" not in ans.answer
    for alternatives in kept:  # the answer is in the English sentence itself, not only in the quote
        assert re.search(alternatives, own), (alternatives, ans.answer)
    assert "330 billion" not in own
