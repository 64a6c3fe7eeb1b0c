"""The chat UI: HTML rendering (fast) and a headless-Chromium run against a real server (slow).

Screenshots go to tests/artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from rag.ui.render import (
    answer_sentence,
    citation_text,
    escape_md,
    highlight,
    render_answer,
    render_card,
    render_sources,
)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

CITATION = {
    "n": 1, "doc_id": "d", "para_id": "d#p3", "title": "標題 <b>x</b>", "source": "https://example.hk/a?b=1&c=2",
    "text": "第一句。<script>alert(1)</script>第二句！", "score": 0.8, "highlights": [[0, 2], [1, 4], [30, 99]],
    "date": "2024-05-01",
}


# -- rendering (fast) ------------------------------------------------------------------------------


def test_highlight_escapes_and_merges_spans():
    html_ = highlight("a<b>c&d", [(1, 4), (3, 5), (9, 12)])
    assert html_ == "a<mark>&lt;b&gt;c</mark>&amp;d"
    assert highlight("abc", []) == "abc"


def test_document_text_never_becomes_markup():
    card = render_card("第一句[1]。", CITATION, turn=2)
    assert "<script>" not in card and "&lt;script&gt;alert(1)&lt;/script&gt;" in card
    assert "<b>x</b>" not in card and "標題 &lt;b&gt;x&lt;/b&gt;" in card
    assert 'id="src-2-1"' in card and "<mark>第一句。</mark>" in card
    assert 'href="https://example.hk/a?b=1&amp;c=2"' in card
    bad = render_card("", {**CITATION, "source": "javascript:alert(3)"}, turn=1)
    assert "href=\"javascript" not in bad and "javascript:alert(3)" in bad  # shown, never a link


def test_answer_markers_become_card_links_and_text_is_escaped():
    md = render_answer("甲<img src=x onerror=alert(2)>。[1] 乙*強調*。[2][9]", 2, turn=3)
    assert '<a class="cite" href="#src-3-1"' in md and 'href="#src-3-2"' in md
    assert "src-3-9" not in md and "\\[9\\]" in md  # a marker without a card stays text
    assert "<img" not in md and "&lt;img src=x onerror=alert(2)&gt;" in md
    assert "\\*強調\\*" in md
    assert escape_md("a_b [c]") == "a\\_b \\[c\\]"
    assert "no-source-msg" in render_answer("找不到。", 0, turn=1, abstained=True)
    assert "answer-mode" in render_answer("主席是陳祖恒。[1]", 1, turn=1, mode="generated")
    assert "answer-mode" not in render_answer("主席是陳祖恒。[1]", 1, turn=1)  # quoted: no badge


def test_citation_text_is_briefing_ready():
    answer = "香港推動新型工業化。 [1] 政府設立辦公室。 [2] 兩者都重要[1][2]。"
    assert answer_sentence(answer, 2) == "政府設立辦公室。 兩者都重要。"
    assert answer_sentence("No markers at all.", 1) == "No markers at all."
    text = citation_text(answer, CITATION)
    lines = text.split("\n")
    assert lines[0] == "香港推動新型工業化。 兩者都重要。"
    assert lines[1] == f"「{CITATION['text']}」"
    assert lines[2] == "——《標題 <b>x</b>》，2024-05-01，https://example.hk/a?b=1&c=2（para_id: d#p3）"
    card = render_card(answer, CITATION, turn=1)
    assert 'class="copy-cite"' in card
    import html

    data = re.search(r'data-cite="([^"]*)"', card).group(1)
    assert html.unescape(data) == text


def test_sources_panel_states():
    assert "No source found" in render_sources({"answer": "找不到", "abstained": True, "citations": []}, 1)
    panel = render_sources({"answer": "x[1]", "abstained": False, "citations": [CITATION, {**CITATION, "n": 2}]}, 4)
    assert panel.count('class="src-card"') == 2
    assert 'id="src-4-1" data-n="1" open' in panel and 'id="src-4-2" data-n="2">' in panel  # first one open


class _StepService:
    """A service whose ask_steps records when each step was asked for (no model needed)."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def ask_steps(self, question: str, k: int, *, history: Any = None, answer_mode: str | None = None) -> Any:
        from rag.answer.steps import Final, Retrieved
        from rag.types import CITATION_REMOVED, Answer, Citation, Hit, Notice

        self.log.append("retrieve")
        yield Retrieved([Hit("d#p1", "d", "甲。", 0.9)] * 2)
        self.log.append("answer")
        cit = Citation(1, "d", "d#p1", "標題", "src", "甲乙。", 0.9, ((0, 3),))
        yield Final(Answer("甲乙。 [1]", False, (cit,), {}, (Notice(CITATION_REMOVED, "citation check: flagged"),)))

    def document(self, doc_id: str) -> Any:
        return type("Doc", (), {"flags": ("mojibake: 1 run",)})()


class _Holder:
    def __init__(self, service: Any) -> None:
        self.service = service
        self.loading = False

    def get(self) -> Any:
        return self.service


def test_respond_yields_real_steps():
    """Each yield is a step as it happens: placeholder, retrieval done, answer (no replay)."""
    from rag.ui.chat import COMPOSING, THINKING, ChatUI

    service = _StepService()
    steps = ChatUI(_Holder(service)).respond("問題？", [], None, "hans", 3)
    _, chat, _, _ = next(steps)
    assert chat[-1]["content"] == THINKING and service.log == []
    _, chat, _, _ = next(steps)
    assert chat[-1]["content"] == COMPOSING.format(n=2) and service.log == ["retrieve"]
    _, chat, sources, state = next(steps)
    assert service.log == ["retrieve", "answer"]
    assert "甲乙。" in chat[-1]["content"] and "answer-warn" in chat[-1]["content"]  # Simplified, warned
    assert "src-flag" in sources and "mojibake" in sources
    assert state["answers"]["1"]["answer"] == "甲乙。 [1]"  # kept in the source's script
    assert next(steps, None) is None


# -- the browser (slow) -------------------------------------------------------------------------------


def _strip(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory, encoder):
    from rag.api.app import create_app
    from rag.service import RagService
    from tests.server_utils import serve_app, tiny_index

    settings, index_dir = tiny_index(tmp_path_factory.mktemp("ui"), encoder)
    service = RagService.open(index_dir, settings, encoder=encoder)
    with serve_app(create_app(settings, service=service)) as srv:
        yield srv, service


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class ChatPage:
    """A thin driver over the page: ask, wait for the streamed answer, look at the cards."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.turn = 0
        self.dialogs: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        # The answer's own text: without the warnings, the abstention reason and the actions under it.
        page.add_init_script("""window.__answerText = (el) => { const c = el.cloneNode(true);
            c.querySelectorAll('.answer-warn, .answer-actions, .abstain-reason, .answer-mode').forEach(x => x.remove());
            return c.textContent; };""")
        page.goto(base_url + "/", wait_until="load")
        page.wait_for_selector("#question textarea", timeout=60_000)
        page.wait_for_function("() => document.querySelector('#status')?.innerText.includes('Index')")

    def ask(self, question: str, expected_answer: str) -> list[str]:
        """Ask and wait for ``expected_answer``; returns the distinct texts the answer passed through."""
        page = self.page
        page.evaluate("""() => {
            window.__snaps = []; clearInterval(window.__snapTimer);
            window.__snapTimer = setInterval(() => {
              const bots = document.querySelectorAll('#chat [data-testid="bot"]');
              const t = bots.length ? window.__answerText(bots[bots.length - 1]) : '';
              if (t && window.__snaps[window.__snaps.length - 1] !== t) window.__snaps.push(t);
            }, 4);
        }""")
        page.fill("#question textarea", question)
        page.keyboard.press("Enter")
        self.turn += 1
        self.wait_answer(expected_answer)
        return page.evaluate("() => { clearInterval(window.__snapTimer); return window.__snaps; }")

    def wait_answer(self, expected_answer: str) -> None:
        self.page.wait_for_function(
            """(want) => { const bots = document.querySelectorAll('#chat [data-testid="bot"]');
                 return bots.length && window.__answerText(bots[bots.length - 1]).replace(/\\s+/g, '') === want; }""",
            arg=_strip(expected_answer), timeout=60_000)

    def clear(self) -> None:
        self.page.click("#chat button[aria-label='Clear']")
        self.page.wait_for_selector("#sources .src-empty")
        self.turn = 0  # a new conversation numbers its turns afresh

    def card(self, n: int) -> Any:
        return self.page.locator(f"#src-{self.turn}-{n}")

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _assert_streamed(snaps: list[str], final: str) -> None:
    """The answer ends as ``final`` and passed through nothing but the step placeholders (no
    replayed pieces). Which placeholders a poll catches depends on timing (a step can last
    under a millisecond); their order is checked in ``test_respond_yields_real_steps``."""
    assert snaps and _strip(snaps[-1]) == _strip(final), snaps
    for s in snaps[:-1]:
        assert "Searching the sources" in s or "composing the answer" in s, snaps


def _assert_cards(chat: ChatPage, answer: dict[str, Any]) -> None:
    page = chat.page
    cards = page.locator(f"#sources .src-list[data-turn='{chat.turn}'] .src-card")
    assert cards.count() == len(answer["citations"]) > 0
    first = chat.card(1)
    assert first.get_attribute("open") is not None
    assert first.locator(".src-title").inner_text() == answer["citations"][0]["title"]
    marks = first.locator(".src-text mark")
    assert marks.count() >= 1 and marks.first.inner_text().strip()


VIEWPORTS = {
    "1280": {"viewport": {"width": 1280, "height": 900}},
    "390": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True},
}


def _click(chat: ChatPage, locator: Any) -> None:
    """A tap on a phone, a click elsewhere."""
    if chat.page.viewport_size and chat.page.viewport_size["width"] < 600:
        locator.tap()
    else:
        locator.click()


def _count_asks(monkeypatch: Any, service: Any) -> list[str]:
    """Record every question the chat sends to the service."""
    calls: list[str] = []
    real = service.ask_steps

    def spy(question: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(question)
        return real(question, *args, **kwargs)

    monkeypatch.setattr(service, "ask_steps", spy)
    return calls


def _wait_scrolled_into_view(chat: ChatPage, n: int, height: int) -> None:
    """Wait until card ``n``'s smooth scroll has ended (the same top two frames running) with
    its top inside the viewport."""
    chat.page.evaluate("() => { window.__lastTop = undefined; }")
    chat.page.wait_for_function(
        """([id, height]) => { const top = document.getElementById(id).getBoundingClientRect().top;
             const still = window.__lastTop === top; window.__lastTop = top;
             return still && top >= 0 && top < height; }""",
        arg=[f"src-{chat.turn}-{n}", height], polling="raf", timeout=10_000)


# Every element under the chat and the sources carrying an on* (event handler) attribute.
ON_ATTRIBUTES = """() => [...document.querySelectorAll('#chat *, #sources *')]
    .filter(el => [...el.attributes].some(a => a.name.toLowerCase().startsWith('on')))
    .map(el => el.outerHTML.slice(0, 120))"""


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("width", VIEWPORTS)
def test_chat_in_three_languages(ui_server, browser, monkeypatch, width):
    from rag.ui.render import citation_text

    server, service = ui_server
    asks = _count_asks(monkeypatch, service)
    context = browser.new_context(**VIEWPORTS[width], locale="zh-HK",
                                  permissions=["clipboard-read", "clipboard-write"])
    chat = ChatPage(context.new_page(), server.base_url)
    page = chat.page
    height = VIEWPORTS[width]["viewport"]["height"]

    # Traditional: a streamed answer, numbered cards with highlighted support.
    q = "香港如何推動新型工業化？"
    answer = service.ask(q, 5).to_dict()
    snaps = chat.ask(q, answer["answer"])
    _assert_streamed(snaps, answer["answer"])
    _assert_cards(chat, answer)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= int(width), "horizontal scrolling"
    chat.shot(f"chat-zh-hant-{width}")

    # Open a citation from its [n] marker: the card opens and scrolls into view.
    n = max(c["n"] for c in answer["citations"])
    if n == 1:
        chat.card(1).evaluate("el => el.open = false")
    assert chat.card(n).get_attribute("open") is None or n == 1
    _click(chat, page.locator(f"#chat a.cite[href='#src-{chat.turn}-{n}']").last)
    page.wait_for_function(f"() => document.getElementById('src-{chat.turn}-{n}').open")
    _wait_scrolled_into_view(chat, n, height)
    box = chat.card(n).bounding_box()
    assert box and 0 <= box["y"] < height, box

    # Copy citation: the button puts the briefing-ready citation on the clipboard.
    want = citation_text(answer["answer"], answer["citations"][0])
    button = chat.card(1).locator("button.copy-cite")
    assert button.get_attribute("data-cite") == want
    for fragment in (answer["citations"][0]["para_id"], answer["citations"][0]["title"], answer["citations"][0]["text"]):
        assert fragment in want
    button.scroll_into_view_if_needed()
    button.click()
    page.wait_for_function("() => window.__ragLastCopied !== undefined")
    assert page.evaluate("() => window.__ragLastCopied") == want
    assert "Copied" in button.inner_text()
    assert page.evaluate("() => navigator.clipboard.readText()") == want

    # Script toggle: the shown answer and its cards are shown again in Simplified, then in
    # Hong Kong script, without asking again.
    expected_in = {name: service.ask(q, 5, script=name).to_dict() for name in ("hans", "hk")}
    asked = len(asks)  # (the spy also counts the test's own service.ask calls, made above)
    for name, script in (("hans", "简体"), ("hk", "香港")):
        shown = expected_in[name]
        page.locator("#script label", has_text=script).click()
        chat.wait_answer(shown["answer"])
        page.wait_for_function("(t) => document.querySelector('#sources .src-card .src-text').innerText.includes(t)",
                               arg=shown["citations"][0]["text"][:12])
        if name == "hans":
            assert "工业化" in chat.card(1).inner_text()
            chat.shot(f"chat-script-hans-{width}")
    page.locator("#script label", has_text="原文").click()
    chat.wait_answer(answer["answer"])
    assert len(asks) == asked, "the script toggle asked the question again"

    # Simplified and English questions (fresh conversations, so no follow-up context).
    for name, question in (("zh-hans", "什么是新质生产力？"), ("en", "How is Hong Kong promoting new industrialisation?")):
        chat.clear()
        expected = service.ask(question, 5).to_dict()
        assert not expected["abstained"], expected
        snaps = chat.ask(question, expected["answer"])
        _assert_streamed(snaps, expected["answer"])
        _assert_cards(chat, expected)
        chat.shot(f"chat-{name}-{width}")

    # A question the corpus cannot answer shows the "no source found" state.
    chat.clear()
    # (Lean mode, no judge: many off-topic English questions, such as the weather on Mars, reach
    # e5's floor 0.12 on this small corpus; the judge is what refuses those, tests/test_llm_judge.py.
    # This one stays under it: the abstention's display is what is tested here.)
    q = "How many goals did Messi score in 2012?"
    expected = service.ask(q, 5).to_dict()
    assert expected["abstained"], expected
    chat.ask(q, "找不到可引用的來源 · No source found" + expected["answer"])
    assert page.locator("#sources .no-source").is_visible()
    assert "No source found" in page.locator("#sources .no-source").inner_text()
    # Why nothing was cited is said, under the answer and in the panel.
    assert expected["abstain_reason"] and "relevance floor" in expected["abstain_reason"]
    assert page.locator("#chat .abstain-reason").last.inner_text() == expected["abstain_reason"]
    assert expected["abstain_reason"] in page.locator("#sources .ns-reason").inner_text()
    chat.shot(f"chat-no-source-{width}")
    assert not chat.dialogs
    context.close()


@pytest.mark.slow
@pytest.mark.model
def test_document_markup_renders_as_text(ui_server, browser):
    from tests.server_utils import XSS_PARA_ID, XSS_TEXT

    server, service = ui_server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    chat = ChatPage(context.new_page(), server.base_url)
    page = chat.page
    page.add_init_script("window.alert = (m) => { window.__alerted = (window.__alerted || []).concat([m]); };")
    q = "網頁安全測試段落寫了什麼？"
    expected = service.ask(q, 5).to_dict()
    cited = [c for c in expected["citations"] if c["para_id"] == XSS_PARA_ID]
    assert cited, expected
    chat.ask(q, expected["answer"])
    card = chat.card(cited[0]["n"])
    card.evaluate("el => el.open = true")
    assert card.locator(".src-text").inner_text() == XSS_TEXT
    assert card.locator(".src-title").inner_text() == "網頁安全測試 <b>標題</b>"
    assert page.evaluate("() => document.querySelectorAll('#chat img, #sources img, #sources b, #sources script, #chat script').length") == 0
    assert page.locator("#sources a[href^='javascript']").count() == 0
    if "<script>" in expected["answer"]:
        assert "<script>alert(1)</script>" in page.locator("#chat [data-testid='bot']").last.inner_text()
    # Code could only run from an element that carries it (a script, an image's onerror, any on*
    # attribute): none is on the page, so no alert is still to come and there is nothing to wait for.
    assert page.evaluate(ON_ATTRIBUTES) == [], "an on* handler attribute reached the page"
    assert not chat.dialogs and page.evaluate("() => window.__alerted") is None
    chat.shot("chat-markup-as-text-1280")
    context.close()


@pytest.mark.slow
@pytest.mark.model
def test_phone_width(ui_server, browser):
    server, service = ui_server
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True)
    chat = ChatPage(context.new_page(), server.base_url)
    page = chat.page
    q = "香港如何推動新型工業化？"
    answer = service.ask(q, 5).to_dict()
    chat.ask(q, answer["answer"])
    _assert_cards(chat, answer)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, "horizontal scrolling on a phone"
    chat.shot("chat-phone-390")
    # On a phone the cards sit below the chat; a [n] marker scrolls down to its card.
    page.locator(f"#chat a.cite[href='#src-{chat.turn}-1']").last.tap()
    _wait_scrolled_into_view(chat, 1, 844)
    box = chat.card(1).bounding_box()
    assert box and 0 <= box["y"] < 844, box
    page.screenshot(path=str(ARTIFACTS / "chat-phone-390-card.png"))
    context.close()



def _set_k(chat: ChatPage, k: int) -> None:
    box = chat.page.locator("#k input[type='number']")
    box.fill(str(k))
    box.press("Enter")
    chat.page.wait_for_function("(k) => document.querySelector('#k input[type=range]').value == String(k)", arg=k)


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("width", VIEWPORTS)
def test_k_and_the_briefing(ui_server, browser, width, tmp_path):
    from tests.test_briefing import check_against_index, docx_references

    server, service = ui_server
    context = browser.new_context(**VIEWPORTS[width], accept_downloads=True)
    chat = ChatPage(context.new_page(), server.base_url)
    page = chat.page
    q = "香港如何推動新型工業化？"

    # k is the most paragraphs an answer may cite: 1 gives one card, 3 gives what ask(k=3) cites.
    _set_k(chat, 1)
    one = service.ask(q, 1).to_dict()
    chat.ask(q, one["answer"])
    assert len(one["citations"]) == 1 and page.locator(f"#sources .src-list[data-turn='{chat.turn}'] .src-card").count() == 1
    _set_k(chat, 3)
    three = service.ask(q, 3).to_dict()
    assert len(three["citations"]) >= 2, three
    chat.clear()
    chat.ask(q, three["answer"])
    _assert_cards(chat, three)

    # Collect three answers (one unanswered) into the briefing, reorder, remove, export.
    questions = [q, "什么是新质生产力？", "How many goals did Messi score in 2012?"]
    chat.clear()
    for i, question in enumerate(questions, 1):
        expected = service.ask(question, 3, history=_history(service, questions[: i - 1])).to_dict()
        # The off-topic last question stands alone (no history prepended) and finds nothing.
        assert expected["abstained"] == (i == 3), expected
        chat.ask(question, _shown(expected))
        _click(chat, page.locator("#chat a.add-brief").last)
        page.wait_for_function("(n) => document.querySelectorAll('#brief-panel .brief-item').length === n", arg=i)
    assert "✓" in page.locator("#chat a.add-brief").last.inner_text()
    assert page.locator("#brief-heading").inner_text().strip().endswith("3")

    def order() -> list[str]:
        return [t.strip() for t in page.locator("#brief-panel .brief-q").evaluate_all(
            "els => els.map(e => e.firstChild.textContent)")]

    assert order() == questions
    _click(chat, page.locator("#brief-panel .brief-item").nth(2).locator("a.brief-up"))
    page.wait_for_function("(q) => document.querySelectorAll('#brief-panel .brief-q')[1].firstChild.textContent === q",
                           arg=questions[2])
    assert order() == [questions[0], questions[2], questions[1]]
    _click(chat, page.locator("#brief-panel .brief-item").nth(0).locator("a.brief-down"))
    page.wait_for_function("(q) => document.querySelectorAll('#brief-panel .brief-q')[0].firstChild.textContent === q",
                           arg=questions[2])
    _click(chat, page.locator("#brief-panel .brief-item").nth(0).locator("a.brief-remove"))
    page.wait_for_function("() => document.querySelectorAll('#brief-panel .brief-item').length === 2")
    assert order() == [questions[0], questions[1]]
    page.locator("#brief-panel").scroll_into_view_if_needed()
    chat.shot(f"chat-briefing-{width}")

    # Export in the display script chosen now (香港): the .docx references match the index. The
    # export buttons change with the shown answers (one update), but show nothing of it; so go
    # through 简体 first, where the answers visibly change, and wait for each script to show.
    page.locator("#script label", has_text="简体").click()
    page.wait_for_function("() => document.querySelector('#chat').innerText.includes('工业化')")
    page.locator("#script label", has_text="香港").click()
    page.wait_for_function("() => !document.querySelector('#chat').innerText.includes('工业化')")
    with page.expect_download() as dl:
        _click(chat, page.locator("#brief-docx"))
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    assert re.fullmatch(r"briefing-\d{8}-\d{6}\.docx", path.name)
    refs = docx_references(path.read_bytes())
    cited = [c["para_id"] for question in questions[:2] for c in service.ask(question, 3).to_dict()["citations"]]
    assert [r["para_id"] for r in refs] == cited
    check_against_index(refs, service, "s2hk")
    with page.expect_download() as dl:
        _click(chat, page.locator("#brief-md"))
    md = Path(dl.value.path()).read_text(encoding="utf-8")
    assert md.index("## 1. ") < md.index("## 2. ") and "參考資料 References" in md
    assert not chat.dialogs
    context.close()


def _shown(answer: dict[str, Any]) -> str:
    """The answer's text as the chat shows it (an abstention under its "no source" banner)."""
    return ("找不到可引用的來源 · No source found" if answer["abstained"] else "") + answer["answer"]


def _history(service: Any, earlier: list[str]) -> list[dict[str, str]]:
    """The chat's history after asking ``earlier`` in one conversation (for the expected answer)."""
    turns: list[dict[str, str]] = []
    for question in earlier:
        turns += [{"role": "user", "content": question},
                  {"role": "assistant", "content": service.ask(question, 3, history=list(turns)).answer}]
    return turns


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("width", VIEWPORTS)
def test_status_follows_loading_then_ready(tmp_path_factory, encoder, browser, width):
    """The status line says "loading" while the index loads and "ready" once it is, without a reload."""
    import threading

    from rag.api.app import create_app
    from rag.service import RagService
    from tests.server_utils import serve_app, tiny_index

    settings, index_dir = tiny_index(tmp_path_factory.mktemp("ui-status"), encoder)
    app = create_app(settings)
    holder = app.state.holder
    release = threading.Event()

    def slow_load() -> None:  # the real open, held until the page has shown "loading"
        release.wait(60)
        holder.service = RagService.open(index_dir, settings, encoder=encoder)
        holder.loading = False

    holder.load = slow_load
    with serve_app(app) as server:
        context = browser.new_context(**VIEWPORTS[width])
        page = context.new_page()
        page.goto(server.base_url + "/", wait_until="load")
        page.wait_for_function("() => document.querySelector('#status')?.innerText.includes('Index is loading')",
                               timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / f"chat-status-loading-{width}.png"))
        release.set()
        page.wait_for_function("() => document.querySelector('#status')?.innerText.includes('Ready')", timeout=60_000)
        status = page.locator("#status").inner_text()
        assert "4 篇文件 documents" in status and "loading" not in status
        context.close()


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("width", VIEWPORTS)
def test_warnings_are_shown(tmp_path_factory, encoder, browser, width):
    """A generated answer whose citation check flagged a sentence shows the warnings under it."""
    from rag.api.app import create_app
    from tests.llm_stub import LLMStub
    from tests.server_utils import serve_app, tiny_writer

    with LLMStub() as stub:
        stub.reply = "香港正積極推動新型工業化。[1] 政府已投入九百億元興建月球工廠。[1] 另見來源。[7]"
        settings, service = tiny_writer(tmp_path_factory.mktemp("ui-warn"), encoder, stub.base_url)
        q = "香港如何推動新型工業化？"
        expected = service.ask(q, 5).to_dict()
        assert expected["warnings"] and any("not supported" in w for w in expected["warnings"]), expected
        with serve_app(create_app(settings, service=service)) as server:
            context = browser.new_context(**VIEWPORTS[width])
            chat = ChatPage(context.new_page(), server.base_url)
            chat.ask(q, expected["answer"])
            box = chat.page.locator("#chat .answer-warn").last
            assert box.is_visible()
            assert expected["mode"] == "generated" and chat.page.locator("#chat .answer-mode").last.is_visible()
            text = box.inner_text()
            for w in expected["warnings"]:
                assert w[:60] in text, (w, text)
            box.scroll_into_view_if_needed()
            chat.page.screenshot(path=str(ARTIFACTS / f"chat-warnings-{width}.png"))
            context.close()


@pytest.mark.slow
@pytest.mark.model
def test_a_written_answer_streams_after_the_quoted_one(tmp_path_factory, encoder, browser):
    """With a language model: the extractive answer and its sources at once, then the model's
    text as it arrives (the sentence being written greyed), then the checked answer."""
    from rag.ui.chat import PENDING_EVERY_S

    from rag.api.app import create_app
    from tests.llm_stub import LLMStub
    from tests.server_utils import serve_app, tiny_writer

    with LLMStub() as stub:
        stub.reply = "香港正積極推動新型工業化。[1] 政府已投入九百億元興建月球工廠。[1]"
        settings, service = tiny_writer(tmp_path_factory.mktemp("ui-stream"), encoder, stub.base_url)
        q = "香港如何推動新型工業化？"
        expected = service.ask(q, 5).to_dict()
        assert expected["mode"] == "generated" and "月球" not in expected["answer"], expected
        # The model pauses mid-sentence twice, each time until the page has shown what it wrote;
        # its pieces come slower than the chat redraws the sentence being written, so each is drawn.
        stub.hold_at = ["政府已投入", "九百億元"]
        stub.piece_delay_s = 1.5 * PENDING_EVERY_S
        with serve_app(create_app(settings, service=service)) as server:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            chat = ChatPage(context.new_page(), server.base_url)
            page = chat.page
            page.fill("#question textarea", q)
            page.keyboard.press("Enter")
            page.wait_for_selector("#chat .writing", timeout=60_000)
            # the sources of the quoted answer are there while the model writes
            assert page.locator("#sources .src-card").count() >= 1
            assert "Quoted from the sources" in page.locator("#chat .draft-label").last.inner_text()
            page.wait_for_function("() => (document.querySelector('#chat .writing .pending')?.textContent || '')"
                                   ".length >= 3", timeout=30_000)
            seen = [page.locator("#chat .writing").last.inner_text()]
            page.screenshot(path=str(ARTIFACTS / "chat-writing.png"))
            stub.resume()
            page.wait_for_function("() => (document.querySelector('#chat .writing')?.innerText || '').length > "
                                   f"{len(seen[0])}", timeout=30_000)
            seen.append(page.locator("#chat .writing").last.inner_text())
            stub.resume()
            assert seen[1].rstrip("▍").startswith(seen[0].rstrip("▍")[:2])  # it grew; nothing was replayed
            chat.wait_answer(expected["answer"])
            assert page.locator("#chat .writing").count() == 0
            assert page.locator("#chat .answer-mode").last.is_visible()
            assert any("月球" in w for w in expected["warnings"])  # the unsupported sentence was removed
            context.close()


@pytest.mark.slow
@pytest.mark.model
def test_api_docs_render_with_the_network_blocked(ui_server, browser):
    """/docs (Swagger UI) and /redoc load everything from this server: with every other host
    blocked, both render the operations."""
    from urllib.parse import urlparse

    server, _ = ui_server
    own = urlparse(server.base_url).netloc
    blocked: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def gate(route: Any) -> None:
        if urlparse(route.request.url).netloc == own:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", gate)
    page = context.new_page()
    page.goto(server.base_url + "/docs", wait_until="load")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    for p in ("/api/ask", "/api/briefing", "/api/search", "/v1/chat/completions"):
        assert any(t.replace("\u200b", "").strip() == p for t in paths), (p, paths)
    page.locator(".opblock-summary-path", has_text="/v1/chat/completions").click()
    page.wait_for_selector(".opblock.is-open .responses-wrapper")
    assert "text/event-stream" in page.locator(".opblock.is-open").inner_text()
    page.screenshot(path=str(ARTIFACTS / "api-docs-offline.png"))

    page.goto(server.base_url + "/redoc", wait_until="load")
    page.wait_for_function("() => document.body.innerText.includes('Answer a question with cited source paragraphs')",
                           timeout=30_000)
    assert "A briefing: each question" in page.locator("body").inner_text()
    page.screenshot(path=str(ARTIFACTS / "api-redoc-offline.png"))
    # The one outside request: the "API docs by Redocly" footer logo that ReDoc's own bundle
    # links to; offline it is simply missing. Every script, style and font came from here.
    assert set(blocked) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}, blocked
    context.close()


SHOTS = Path("/tmp/shots-model-queue")


@pytest.mark.slow
def test_the_answer_toggle_changes_only_the_next_answer(browser, tmp_path_factory):
    """With a model that writes (the scripted stub behind RAG_LLM_BASE_URL; the hashing encoder,
    no real model): the toggle starts at the server's default (written); set to quoted, the
    answer already shown stays written and the next one is quoted. Without a model it is hidden."""
    from rag.api.app import create_app
    from tests.llm_stub import LLMStub
    from tests.server_utils import serve_app, tiny_hashing
    from tests.test_model_queue import WRITTEN

    q1, q2 = "香港如何推動新型工業化？", "新型工業化辦公室做甚麼？"
    with LLMStub() as stub:
        stub.reply = WRITTEN
        settings, service = tiny_hashing(tmp_path_factory.mktemp("ui-mode"), llm_base_url=stub.base_url)
        assert service.default_answer_mode == "written" and service.writer is not None
        written = service.ask(q1, 5).to_dict()
        quoted = service.ask(q2, 5, answer_mode="extractive").to_dict()
        assert written["mode"] == "generated" and quoted["mode"] == "extractive"
        with serve_app(create_app(settings, service=service)) as server:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            chat = ChatPage(context.new_page(), server.base_url)
            page = chat.page
            toggle = page.locator("#answer-mode")
            toggle.wait_for(state="visible")
            assert page.locator("#answer-mode input[value='written']").is_checked()
            asked = len(stub.requests)
            chat.ask(q1, written["answer"])
            bot = page.locator("#chat [data-testid='bot']")
            assert bot.last.locator(".answer-mode").count() == 1  # the written-answer badge
            assert len(stub.requests) == asked + 1
            first = bot.last.inner_html()

            page.locator("#answer-mode label", has_text="Quoted").click()
            page.wait_for_function("() => document.querySelector(\"#answer-mode input[value='extractive']\").checked")
            time.sleep(0.5)  # a change handler, were there one, would have re-rendered by now
            assert bot.last.inner_html() == first and len(stub.requests) == asked + 1  # nothing asked again

            chat.ask(q2, quoted["answer"])
            assert bot.count() == 2 and bot.first.inner_html() == first  # the first answer stays written
            assert bot.last.locator(".answer-mode").count() == 0 and len(stub.requests) == asked + 1
            assert page.locator("#answer-mode input[value='extractive']").is_checked()  # it stays as set
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "chat-answer-toggle-1280.png"), full_page=True)
            chat.shot("chat-answer-toggle-1280")
            context.close()
            # On a phone the toggle fits too.
            context = browser.new_context(**VIEWPORTS["390"])
            chat = ChatPage(context.new_page(), server.base_url)
            chat.page.locator("#answer-mode").wait_for(state="visible")
            assert chat.page.evaluate("() => document.documentElement.scrollWidth") <= 390
            chat.page.locator("#answer-mode").scroll_into_view_if_needed()
            chat.page.screenshot(path=str(SHOTS / "chat-answer-toggle-390.png"))
            context.close()

    # No model that writes: no toggle.
    settings, service = tiny_hashing(tmp_path_factory.mktemp("ui-no-mode"))
    with serve_app(create_app(settings, service=service)) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        chat = ChatPage(context.new_page(), server.base_url)
        chat.page.wait_for_timeout(500)
        assert not chat.page.locator("#answer-mode").is_visible()
        context.close()
