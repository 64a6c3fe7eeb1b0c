"""Headlines, captions and credits are not quoted as answer sentences (rag.text.headlines)."""

from __future__ import annotations

import re

import pytest

from rag.answer.extractive import best_spans, extractive_answer, select_sentences
from rag.question import Question
from rag.text.headlines import label_lines
from rag.types import Hit


def _labels(text: str, title: str = "") -> list[tuple[str, str]]:
    return [(text[a:b], kind) for a, b, kind in label_lines(text, title)]


def test_a_short_unpunctuated_first_line_is_a_headline():
    text = "香港推動新型工業化\n特區政府今年投入100億元，支持企業設立智能生產線。"
    assert _labels(text) == [("香港推動新型工業化", "headline")]


def test_consecutive_leading_headlines_and_only_leading_ones():
    text = "話你知\n香港工業發展\n香港由小漁村變成國際大都會，工業扮演舉足輕重的角色。\n工業總會成立於1960年"
    assert _labels(text) == [("話你知", "headline"), ("香港工業發展", "headline")]


def test_a_single_line_and_list_items_are_body_text():
    assert _labels("生產力局主席陳祖恒表示，香港要發展新質生產力") == []
    text = "創科成績亮麗\n- 全球新興生態系統第3名\n- 世界數碼競爭力全球第7"
    assert _labels(text) == [("創科成績亮麗", "headline")]


def test_a_line_that_repeats_the_title_in_any_script():
    title = "香港成立“新型工業化發展中心”"
    text = "發展中心由生產力局管理。\n香港成立「新型工业化发展中心」。"
    assert _labels(text, title) == [("香港成立「新型工业化发展中心」。", "title")]


@pytest.mark.parametrize(
    "line",
    [
        "圖：行政長官李家超出席論壇。",
        "图片：生产力局主席陈祖恒致辞。",
        "(Photo: The chairman speaks at the forum.)",
        "Photo: Hong Kong Science Park.",
        "李家超（中）出席香港工業總會論壇，與嘉賓合照。",
        "馮旭(左)和黎少斌(右)簽署合作協議。",
        "陳仲文(左三)代表出席頒發儀式。",
        "The two sides sign the agreement (from left) in Shenzhen.",
        "黎少斌指出三方以此次合作為契機。圖片由主辦方提供",
        "位於將軍澳創新園的數據技術中心。科技園數據技術中心官網圖片",
        "李家超出席論壇，與嘉賓合照。中通社",
        "The minister opens the centre. Photo by Reuters",
    ],
)
def test_captions(line):
    body = "生產力局今年將投入5億元，協助本地企業引入智能生產線。"
    assert _labels(f"{body}\n{line}") == [(line, "caption")]


def test_credits_and_source_notes():
    body = "製造業總收益達到2433億元。"
    assert _labels(f"{body}\n資料來源：統計處 修訂日期：2023年2月22日") == [
        ("資料來源：統計處 修訂日期：2023年2月22日", "credit")
    ]
    assert _labels(f"{body}\n圖片由主辦方提供") == [("圖片由主辦方提供", "credit")]


@pytest.mark.parametrize(
    "line",
    [
        "副院長（研究）盧煜明介紹了檢測技術。",  # parentheses that are not a position
        "生產力局設計的生產線已在中大(中文大學)展出。",
        "The centre opened in 2023. It is managed by the Productivity Council.",
        "香港推動新型工業化。",  # a first line that ends a sentence is body text
        "市民可在網上查看相關照片及影片，了解計劃詳情。",  # 照片 inside a sentence, not a credit tail
    ],
)
def test_body_lines_are_not_labelled(line):
    assert _labels(f"{line}\n生產力局亦會與大學合作培訓人才。") == []


HEADED = Hit(
    para_id="itib#p6",
    doc_id="itib",
    title="創新科技及工業局盤點2024年工作",
    text="香港推動新型工業化\n特區政府今年投入100億元，成立創科產業引導基金。基金將投資策略性產業。",
    score=0.9,
    relevance=0.9,
)
CAPTION = Hit(
    para_id="forum#p2",
    doc_id="forum",
    title="港府推進新型工業化",
    text="李家超（中）出席論壇推動新型工業化，與嘉賓合照。中通社",
    score=0.95,
    relevance=0.95,
)


def _quoted(answer_text: str) -> list[str]:
    return [s.strip() for s in re.split(r"\s*\[\d+\]\s*", answer_text) if s.strip()]


@pytest.mark.parametrize("question", ["香港如何推動新型工業化？", "香港如何推动新型工业化？"])
def test_the_headline_is_not_quoted_but_stays_in_the_citation(question):
    ans = extractive_answer(Question.make(question), [CAPTION, HEADED])
    assert not ans.abstained
    assert "香港推動新型工業化" not in _quoted(ans.answer)
    assert all("中通社" not in s and "（中）" not in s for s in _quoted(ans.answer))
    cited = {c.para_id: c for c in ans.citations}
    assert list(cited) == ["itib#p6"]  # the caption paragraph is not cited: nothing was quoted from it
    assert cited["itib#p6"].text == HEADED.text  # the headline stays in the paragraph shown


def test_an_english_question_quotes_the_body_after_a_headline_its_vector_chose():
    # Retrieval's closest sentence is the headline (an English question over Chinese text).
    hit = Hit(**{**HEADED.__dict__, "best_sentence": (0, 9)})
    picked = select_sentences(Question.make("How does Hong Kong push new industrialisation?"), [hit])
    assert [hit.text[a:b] for _, a, b in picked] == ["特區政府今年投入100億元，成立創科產業引導基金。"]


def test_a_paragraph_of_captions_only_is_still_quoted_when_nothing_else_is():
    ans = extractive_answer(Question.make("李家超出席了甚麼論壇？"), [CAPTION])
    assert not ans.abstained and "李家超（中）出席論壇" in ans.answer


def test_search_highlights_skip_the_headline():
    spans = best_spans(Question.make("新型工業化引導基金投入"), HEADED.text)
    assert spans and all(HEADED.text[a:b] != "香港推動新型工業化" for a, b in spans)


# -- through the real service on the default corpus -----------------------------------------


@pytest.mark.model
@pytest.mark.parametrize(
    "question",
    [
        "人工智能超算中心投入服務了嗎？",
        "中銀香港對創科企業的貸款增長如何？",
        "新型工业发展办公室成立后推动什么？",
        "What did the Innovation, Technology and Industry Bureau review for 2024?",
        "Who attended the strategic cooperation agreement signing in Shanghai?",
    ],
)
def test_real_answers_quote_no_headline_caption_or_credit(corpus_service, question):
    ans = corpus_service.ask(question, k=3)
    assert not ans.abstained, ans.answer
    for c in ans.citations:
        labelled = label_lines(c.text, c.title)
        for a, b in c.highlights:
            assert not any(la <= a and b <= lb for la, lb, _ in labelled), (c.para_id, c.text[a:b])
