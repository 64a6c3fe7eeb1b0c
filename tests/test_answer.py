"""Extractive answers, citations, abstention and display scripts over hand-built hits."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from rag.answer.abstain import ABSTAIN_MESSAGES
from rag.answer.compose import answer_from_hits
from rag.answer.display import search_body, stream_pieces
from rag.config import Settings
from rag.errors import InputError
from rag.profiles import E5_SMALL
from rag.question import Question
from rag.text.language import detect_lang
from rag.text.normalise import convert_script
from rag.text.script import SCRIPTS, display
from rag.text.sentences import split_sentences
from rag.types import Answer, Hit

HKPC = Hit(
    para_id="hkpc-2024#p3",
    doc_id="hkpc-2024",
    title="生產力局推動新型工業化",
    source="https://example.hk/news/hkpc-2024",
    date="2024-03-08",
    text=(
        "生產力局主席陳祖恒表示，香港推動新型工業化，需要加快發展新質生產力。"
        "他指出，生產力局今年將投入5億元，協助本地企業引入智能生產線。"
        "生產力局亦會與大學合作培訓人才。"
    ),
    score=0.88,
    chunk_id="hkpc-2024#p3@0",
)
ITIB = Hit(
    para_id="itib-2024#p2",
    doc_id="itib-2024",
    title="新型工業加速計劃",
    source="https://example.hk/news/itib",
    date="2024-05-02",
    text=(
        "創新科技及工業局局長孫東表示，政府已成立新型工業化發展辦公室。\n"
        "「新型工業加速計劃」以一比一配對形式，資助企業在港設立智能生產設施，每個項目最多2億元。"
    ),
    score=0.86,
)
XI = Hit(
    para_id="xinhua#p1",
    doc_id="xinhua",
    title="发展新质生产力",
    source="https://example.cn/xinhua",
    text="习近平强调，发展新质生产力是推动高质量发展的内在要求和重要着力点。各地要因地制宜发展新质生产力。",
    score=0.84,
)
WEATHER = Hit(
    para_id="hko#p1",
    doc_id="hko",
    title="天氣",
    source="hko.txt",
    text="天文台預測明日天氣晴朗，最高氣溫約三十度。市民應注意防曬。",
    score=0.83,
)
ENGLISH = Hit(
    para_id="scmp#p4",
    doc_id="scmp",
    title="HKPC budget",
    source="https://example.com/scmp",
    text=(
        "The Hong Kong Productivity Council said it would invest HK$500 million this year. "
        "The money will help local manufacturers adopt smart production lines. "
        "Officials also met university leaders."
    ),
    score=0.87,
)


def settings(**kw) -> Settings:
    base = {"llm_base_url": None, "min_score": None}
    return Settings(_env_file=None, **{**base, **kw})


MARKER = re.compile(r"\[(\d+)\]")


def assert_consistent(answer: Answer, hits: list[Hit]) -> None:
    """Citations only from hits, numbered 1..N, every marker listed and every citation used."""
    nums = [c.n for c in answer.citations]
    assert nums == list(range(1, len(nums) + 1))
    by_id = {h.para_id: h for h in hits}
    for c in answer.citations:
        assert c.para_id in by_id
        hit = by_id[c.para_id]
        assert (c.original_text or c.text) == hit.text
        assert c.doc_id == hit.doc_id and c.date == hit.date and c.source == hit.source
        for a, b in c.highlights:
            assert 0 <= a < b <= len(c.text)
    markers = {int(m) for m in MARKER.findall(answer.answer)}
    assert markers == set(nums)


def sentence_texts(text: str) -> set[str]:
    return {text[a:b] for a, b in split_sentences(text)}


# -- extractive answers ---------------------------------------------------------------------


def test_traditional_question_gets_the_supporting_sentence_with_its_marker():
    hits = [HKPC, ITIB, WEATHER]
    ans = answer_from_hits(Question.make("生產力局今年投入多少資金協助企業？"), hits, settings())
    assert not ans.abstained
    assert_consistent(ans, hits)
    first = ans.citations[0]
    assert first.para_id == HKPC.para_id and first.n == 1
    assert "他指出，生產力局今年將投入5億元，協助本地企業引入智能生產線。 [1]" in ans.answer
    assert all(c.para_id != WEATHER.para_id for c in ans.citations)
    assert first.title == HKPC.title and first.original_text is None


def test_highlights_are_sentences_of_the_paragraph_and_appear_in_the_answer():
    hits = [ITIB, HKPC, XI]
    ans = answer_from_hits(Question.make("新型工業加速計劃如何資助企業？"), hits, settings())
    assert_consistent(ans, hits)
    assert ans.citations[0].para_id == ITIB.para_id
    for c in ans.citations:
        assert c.highlights
        for a, b in c.highlights:
            assert c.text[a:b] in sentence_texts(c.text)
            assert f"{c.text[a:b]} [{c.n}]" in ans.answer


def test_simplified_question_matches_traditional_paragraphs():
    hits = [HKPC, ITIB]
    ans = answer_from_hits(Question.make("生产力局今年投入多少资金？"), hits, settings())
    assert not ans.abstained
    assert ans.citations[0].para_id == HKPC.para_id
    assert "5億元" in ans.answer


def test_at_most_three_citations_and_only_used_paragraphs():
    hits = [HKPC, ITIB, XI, WEATHER, ENGLISH]
    ans = answer_from_hits(Question.make("新質生產力"), hits, settings())
    assert_consistent(ans, hits)
    assert 1 <= len(ans.citations) <= 3
    for c in ans.citations:
        assert c.highlights, "a cited paragraph must have contributed a sentence"


def test_hits_below_the_floor_are_never_cited():
    low = Hit(para_id="low#p1", doc_id="low", text=HKPC.text, score=E5_SMALL.floor - 0.05)
    hits = [ITIB, low]
    ans = answer_from_hits(Question.make("生產力局今年投入多少資金？"), hits, settings())
    assert all(c.para_id != "low#p1" for c in ans.citations)
    assert_consistent(ans, hits)


def test_english_question_over_english_text_quotes_sentences():
    ans = answer_from_hits(Question.make("How much will the Productivity Council invest?"), [ENGLISH], settings())
    assert ans.answer.startswith(
        "The Hong Kong Productivity Council said it would invest HK$500 million"
    )
    assert ans.answer.endswith("[1]")
    assert_consistent(ans, [ENGLISH])


def test_english_question_over_chinese_text_gets_chinese_sentences_in_an_english_frame():
    hits = [HKPC, ITIB]
    ans = answer_from_hits(
        Question.make("What does the productivity council chairman say about industrialisation?"), hits, settings()
    )
    assert not ans.abstained
    assert ans.answer.startswith("On the question “What does the productivity council chairman say about "
                                 "industrialisation?”, the source")
    assert "生產力局主席陳祖恒表示" in ans.answer
    assert_consistent(ans, hits)
    assert ans.citations[0].para_id == HKPC.para_id


def test_english_question_prefers_a_sentence_sharing_its_number():
    ans = answer_from_hits(Question.make("Which programme funds up to 2 (億) per project?"), [ITIB], settings())
    assert "最多2億元。」[1]" in ans.answer


# -- abstention -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "lang"),
    [
        ("新型工業化的進展如何？", "zh-Hant"),
        ("新型工业化的进展如何？", "zh-Hans"),
        ("How is new industrialisation going?", "en"),
    ],
)
def test_abstains_on_no_hits_and_on_low_scores_in_the_question_language(question, lang):
    for hits in ([], [Hit(para_id="x#p1", doc_id="x", text=HKPC.text, score=0.72, relevance=E5_SMALL.floor - 0.05)]):
        ans = answer_from_hits(Question.make(question), hits, settings())
        assert ans.abstained
        assert ans.citations == ()
        assert ans.answer == ABSTAIN_MESSAGES[lang]
        assert not MARKER.search(ans.answer)


class _PassingJudge:
    """A judge that passes every paragraph it reads, and records them."""

    floor = 0.5
    top_k = 3
    kind = "local"

    def __init__(self) -> None:
        self.read: list[str] = []

    def judge(self, question, hits):
        from rag.llm.judge import Verdict

        self.read += [h.para_id for h in hits]
        return [Verdict(h.para_id, 0.9, 0.0) for h in hits]

    def describe(self):
        return {}


def test_with_the_judge_the_floor_only_screens_off_topic_questions():
    """Between the judged floor and the plain one, the judge decides; under both, nobody reads."""
    assert 0 < E5_SMALL.judged_floor < E5_SMALL.floor
    q = Question.make("生產力局今年投入多少資金？")
    middle = Hit(para_id="m#p1", doc_id="m", text=HKPC.text, score=0.8,
                 relevance=(E5_SMALL.judged_floor + E5_SMALL.floor) / 2)
    assert answer_from_hits(q, [middle], settings()).abstained  # no judge: the plain floor refuses it
    judge = _PassingJudge()
    ans = answer_from_hits(q, [middle], settings(), judge=judge)
    assert not ans.abstained and judge.read == ["m#p1"] and [c.para_id for c in ans.citations] == ["m#p1"]
    off = replace(middle, para_id="o#p1", relevance=E5_SMALL.judged_floor / 2)
    judge = _PassingJudge()
    ans = answer_from_hits(q, [off], settings(), judge=judge)
    assert ans.abstained and judge.read == [] and "relevance floor 0.05" in (ans.abstain_reason or "")
    # RAG_MIN_SCORE, when set, is the floor in both modes
    assert answer_from_hits(q, [middle], settings(min_score=0.9), judge=_PassingJudge()).abstained


def test_min_score_setting_overrides_the_default_floor():
    hits = [Hit(para_id="x#p1", doc_id="x", text=HKPC.text, score=0.9, relevance=0.72)]
    ans = answer_from_hits(Question.make("生產力局今年投入多少資金？"), hits, settings(min_score=0.7))
    assert not ans.abstained and ans.citations[0].para_id == "x#p1"
    assert answer_from_hits(Question.make("生產力局今年投入多少資金？"), [HKPC], settings(min_score=0.9)).abstained


def test_abstention_message_follows_the_display_script():
    ans = answer_from_hits(Question.make("新型工業化的進展如何？"), [], settings(), script="hans")
    assert ans.answer == ABSTAIN_MESSAGES["zh-Hans"]


# -- display scripts ------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["hans", "hk", "tw", "hant"])
def test_display_script_converts_answer_and_paragraphs_keeping_the_original(script):
    hits = [HKPC, XI]
    ans = answer_from_hits(Question.make("生產力局今年投入多少資金？"), hits, settings(), script=script)
    config = SCRIPTS[script]
    assert_consistent(ans, hits)
    c = ans.citations[0]
    assert c.text == convert_script(HKPC.text, config)
    if script == "hans":
        assert c.original_text == HKPC.text
        assert "生产力局今年将投入5亿元" in ans.answer
        assert c.title == convert_script(HKPC.title, "t2s")
    for a, b in c.highlights:
        assert c.text[a:b] in sentence_texts(c.text)
        assert c.text[a:b] in ans.answer


def test_simplified_paragraph_shown_in_hong_kong_traditional():
    ans = answer_from_hits(Question.make("发展新质生产力是什么要求？"), [XI], settings(), script="hk")
    c = ans.citations[0]
    assert c.original_text == XI.text
    assert "發展新質生產力" in c.text and "發展新質生產力" in ans.answer


def test_highlights_stay_valid_when_conversion_changes_lengths():
    text = "记者用U盘拷贝了资料。软件公司表示，鼠标和U盘的销量今年上升三成。"
    hit = Hit(para_id="it#p1", doc_id="it", text=text, score=0.9)
    assert len(convert_script(text, "s2twp")) != len(text)  # the case this test is about
    ans = answer_from_hits(Question.make("鼠标和U盘的销量"), [hit], settings(), script="tw")
    c = ans.citations[0]
    assert c.original_text == text
    assert c.highlights
    for a, b in c.highlights:
        assert c.text[a:b] in sentence_texts(c.text)
        assert "滑鼠" in c.text[a:b]
        assert f"{c.text[a:b]} [1]" in ans.answer


def test_display_maps_spans_exactly():
    text = "用U盘。好的软件！"
    shown, spans = display(text, "s2twp", [(0, 4), (4, 9)])
    assert [shown[a:b] for a, b in spans] == [
        convert_script("用U盘。", "s2twp"),
        convert_script("好的软件！", "s2twp"),
    ]


def test_unknown_script_is_refused_with_the_choices():
    with pytest.raises(InputError, match="original, hant, hans, hk, tw"):
        answer_from_hits(Question.make("問題"), [HKPC], settings(), script="klingon")


# -- search body, language, streaming ----------------------------------------------------


def test_search_body_numbers_hits_by_rank_and_highlights_related_sentences():
    hits = [ITIB, HKPC, WEATHER]
    body = search_body(Question.make("生產力局投入5億元"), hits, script="hans")
    assert [h["n"] for h in body["hits"]] == [1, 2, 3]
    assert [h["para_id"] for h in body["hits"]] == [h.para_id for h in hits]
    hk = body["hits"][1]
    assert hk["original_text"] == HKPC.text
    (a, b), *_ = hk["highlights"]
    assert "5亿元" in hk["text"][a:b]
    assert body["hits"][2]["highlights"] == []
    assert body["hits"][0]["score"] == ITIB.score


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("生產力局今年投入多少資金？", "zh-Hant"),
        ("生产力局今年投入多少资金？", "zh-Hans"),
        ("香港的新型工業化", "zh-Hant"),
        ("How much will HKPC invest?", "en"),
        ("What is 新質生產力?", "en"),
        ("HKPC今年投入多少資金？", "zh-Hant"),
    ],
)
def test_detect_lang(text, lang):
    assert detect_lang(text) == lang


def test_stream_pieces_rejoin_and_separate_markers():
    ans = answer_from_hits(Question.make("新型工業加速計劃如何資助企業？"), [ITIB, HKPC], settings())
    pieces = list(stream_pieces(ans.answer))
    assert "".join(pieces) == ans.answer
    assert len(pieces) >= 2
    assert any(p.strip() == "[1]" for p in pieces)
    text = "On the chairman, the sources say: 甲。 [1] Second one. [2]"
    assert "".join(stream_pieces(text)) == text
    assert list(stream_pieces("")) == []


def test_answer_carries_timings_and_serialises():
    d = answer_from_hits(Question.make("生產力局今年投入多少資金？"), [HKPC], settings()).to_dict()
    assert set(d) >= {"answer", "abstained", "citations", "timings_ms", "warnings"}
    assert d["citations"][0]["highlights"] and isinstance(d["citations"][0]["highlights"][0], list)
    assert "extract" in d["timings_ms"]
