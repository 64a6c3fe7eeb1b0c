"""A small two-script corpus built from known facts, and a scripted stand-in for the local model
that drafts from it (``rag gold draft`` without the real model: tests/test_gold_drafting.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.evaluation.drafting import LANG_NAMES, NEAR_MISS_SYSTEM, QUESTION_SYSTEM
from rag.text.normalise import convert_script
from rag.text.sentences import matching_form


@dataclass(frozen=True)
class Fact:
    text: str  # one paragraph
    answer: str  # as the paragraph writes it
    questions: tuple[str, str, str]  # zh-Hant, zh-Hans, en


# Five documents: three in Traditional characters, two in Simplified. Each paragraph states one fact.
DOCS: dict[str, tuple[str, tuple[str, str, str], list[Fact]]] = {  # title, near miss (3 languages), facts
    "ocean-park.txt": ("海洋公園新設施", ("海洋公園明年的門票價格是多少？", "海洋公园明年的门票价格是多少？",
                                      "How much will an Ocean Park ticket cost next year?"), [
        Fact("海洋公園主席黎定基表示，園方計劃在明年夏季開放全新的水上樂園，預計每年吸引二百萬名遊客。", "黎定基",
             ("海洋公園的主席是誰？", "海洋公园的主席叫什么名字？", "Who is the chairman of Ocean Park?")),
        Fact("新水上樂園由英國設計公司藍鯨工作室負責設計，佔地約四公頃，設有十二條滑水道。", "藍鯨工作室",
             ("海洋公園的新水上樂園由哪家公司設計？", "海洋公园新水上乐园的设计公司是哪家？",
              "Which company designed Ocean Park's new water park?")),
        Fact("園方同時宣佈，全港長者可於每月第一個星期二免費入場，毋須預約。", "每月第一個星期二",
             ("長者可以在哪一天免費進入海洋公園？", "老人哪天可以免费进入海洋公园？",
              "On which day can elderly people enter Ocean Park for free?")),
    ]),
    "tram.txt": ("香港電車更新計劃", ("電車公司今年的廣告收入是多少？", "电车公司今年的广告收入是多少？",
                                   "How much advertising income did Hong Kong Tramways earn this year?"), [
        Fact("香港電車公司董事總經理高達文宣佈，全部電車將於二〇二七年前換上空調車廂。", "高達文",
             ("香港電車公司的董事總經理是誰？", "香港电车公司的董事总经理是谁？",
              "Who is the managing director of Hong Kong Tramways?")),
        Fact("電車公司去年共接載約一億八千萬人次乘客，比前年增加百分之六。", "一億八千萬人次",
             ("香港電車去年接載了多少人次乘客？", "香港电车去年载客多少人次？",
              "How many passenger trips did Hong Kong Tramways carry last year?")),
        Fact("新一代電車的車身由本地技工在屈地街車廠組裝，每輛需時約三個月。", "屈地街車廠",
             ("新一代電車在哪個車廠組裝？", "新一代电车在哪个车厂组装？",
              "At which depot are the new-generation trams assembled?")),
    ]),
    "library.txt": ("中央圖書館自助服務", ("中央圖書館明年的購書預算是多少？", "中央图书馆明年的购书预算是多少？",
                                      "What is the Central Library's book budget for next year?"), [
        Fact("香港中央圖書館館長梁美琪表示，館方將設立全港首個二十四小時自助借書站。", "梁美琪",
             ("香港中央圖書館的館長是誰？", "香港中央图书馆的馆长是谁？",
              "Who is the head of the Hong Kong Central Library?")),
        Fact("自助借書站將設於銅鑼灣港鐵站Ｆ出口旁，可存放約五千本圖書。", "銅鑼灣港鐵站Ｆ出口",
             ("二十四小時自助借書站設在哪裏？", "二十四小时自助借书站设在哪里？",
              "Where will the 24-hour self-service book station be located?")),
        Fact("圖書館去年為小學生舉辦了三百二十場兒童故事活動，參加人數創新高。", "三百二十場",
             ("中央圖書館去年舉辦了多少場兒童故事活動？", "中央图书馆去年举办了多少场儿童故事活动？",
              "How many storytelling sessions for children did the Central Library hold last year?")),
    ]),
    "wetland.txt": ("深圳湾湿地公园观鸟季", ("濕地公園每年的門票收入有多少？", "湿地公园每年的门票收入有多少？",
                                        "How much ticket income does the wetland park earn each year?"), [
        Fact("深圳湾湿地公园负责人陈志远介绍，公园今年冬季共记录到七十八种候鸟。", "陈志远",
             ("深圳灣濕地公園的負責人是誰？", "深圳湾湿地公园的负责人是谁？",
              "Who is in charge of the Shenzhen Bay Wetland Park?")),
        Fact("公园新建的观鸟长廊全长一点二公里，由本地建筑师林晓设计。", "林晓",
             ("濕地公園的觀鳥長廊由哪位建築師設計？", "观鸟长廊是哪位建筑师设计的？",
              "Which architect designed the wetland park's bird-watching walkway?")),
        Fact("为保护候鸟栖息，公园每年三月至五月关闭东侧滩涂区域。", "三月至五月",
             ("濕地公園每年哪幾個月關閉東側灘塗？", "湿地公园每年几月关闭东侧滩涂区域？",
              "In which months does the wetland park close its eastern mudflats?")),
    ]),
    "robots.txt": ("全国青少年机器人大赛", ("機器人大賽的冠軍獎金是多少？", "机器人大赛的冠军奖金是多少？",
                                        "How much prize money does the robotics competition winner get?"), [
        Fact("全国青少年机器人大赛今年在杭州举行，共有来自三十一个省份的队伍参赛。", "杭州",
             ("今年全國青少年機器人大賽在哪個城市舉行？", "今年全国青少年机器人大赛在哪里举行？",
              "In which city is this year's national youth robotics competition held?")),
        Fact("大赛冠军由上海实验中学的星火队夺得，他们的机器人能自动分拣垃圾。", "星火队",
             ("機器人大賽的冠軍是哪支隊伍？", "机器人大赛的冠军是哪支队伍？",
              "Which team won the youth robotics competition?")),
        Fact("大赛组委会主任王建国表示，明年的比赛将增设无人机项目。", "王建国",
             ("機器人大賽組委會主任是誰？", "机器人大赛组委会主任是谁？",
              "Who is the director of the robotics competition's organising committee?")),
    ]),
}
LANG_ORDER = ("zh-Hant", "zh-Hans", "en")


def write_corpus(folder: Path) -> Path:
    """The five documents as .txt files (title line, then one paragraph per fact) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (title, _miss, facts) in DOCS.items():
        (folder / name).write_text(title + "\n\n" + "\n\n".join(f.text for f in facts) + "\n", encoding="utf-8")
    return folder


def _key(text: str) -> str:
    return matching_form(text)


class ScriptedDraftModel:
    """Drafts as a competent model would for the facts of :data:`DOCS`: the fact's question in the
    language asked, its answer copied (in Simplified characters for a Simplified question: the
    check must find it script-blind), and a judge that says yes where the paragraph holds the
    answer of the question. ``calls`` counts replies."""

    name = "scripted-stub"

    def __init__(self) -> None:
        self.calls = 0
        self.facts = [f for _, _, facts in DOCS.values() for f in facts]
        self.answer_of = {_key(q): f.answer for f in self.facts for q in f.questions}

    def _fact(self, passage: str) -> tuple[Fact, tuple[str, str, str]]:
        for _title, miss, facts in DOCS.values():
            for f in facts:
                if f.text in passage:
                    return f, miss
        raise AssertionError(f"not a paragraph of the scripted corpus: {passage!r}")

    def complete(self, messages: list[dict[str, str]]) -> str:
        self.calls += 1
        asked = messages[-1]["content"]
        lang = next(code for code, name in LANG_NAMES.items() if name in asked)
        fact, miss = self._fact(asked)
        if messages[0]["content"] == NEAR_MISS_SYSTEM:
            return json.dumps({"question": miss[LANG_ORDER.index(lang)]}, ensure_ascii=False)
        assert messages[0]["content"] == QUESTION_SYSTEM
        answer = convert_script(fact.answer, "t2s") if lang == "zh-Hans" else fact.answer
        question = fact.questions[LANG_ORDER.index(lang)]
        return f"```json\n{json.dumps({'answer': answer, 'question': question}, ensure_ascii=False)}\n```"

    def p_yes(self, question: str, title: str, text: str) -> float:
        answer = self.answer_of.get(_key(question))
        return 0.92 if answer is not None and _key(answer) in _key(text) else 0.04


class ReplyStub:
    """A draft model scripted per test: ``reply(messages) -> str`` and ``judge(question, title,
    text) -> float``; records what it was asked."""

    name = "reply-stub"

    def __init__(self, reply: Callable[[list[dict[str, str]]], str],
                 judge: Callable[[str, str, str], float] = lambda q, title, text: 0.9) -> None:
        self.reply = reply
        self.judge = judge
        self.asked: list[list[dict[str, str]]] = []
        self.judged: list[tuple[str, str]] = []

    def complete(self, messages: list[dict[str, str]]) -> str:
        self.asked.append(messages)
        return self.reply(messages)

    def p_yes(self, question: str, title: str, text: str) -> float:
        self.judged.append((question, text))
        return self.judge(question, title, text)


def passage_in(messages: list[dict[str, str]]) -> str:
    """The passage a drafting prompt asks about: the last one given (the first is the example)."""
    for message in reversed(messages):
        m = re.search(r"Passage:\n(.*?)\n\n", message["content"], re.DOTALL)
        if m is not None and message["role"] == "user":
            return m.group(1)
    raise AssertionError("no passage in the prompt")
