"""The chat's documents page and collection selector: its handlers and HTML (fast, the hashing
encoder), and a headless-Chromium run against a real server with the real model at 1280 and
390 px (slow): log in as admin, upload a .docx and a .pdf into a new collection while the
progress bar runs to done, ask that collection and see the citation, delete with the
confirmation, ask again.

Screenshots go to tests/artifacts/docs-*.png (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rag.ui.render import JOB_STAGES, job_percent, render_document, render_documents, render_job

from rag.api.app import create_app
from rag.api.auth import parse_keys
from tests.server_utils import serve_app, tiny_hashing, tiny_index
from tests.test_collections import blank_pdf
from tests.test_ingest import docx_bytes, pdf_bytes
from tests.test_ui_browser import (  # noqa: F401  (browser: the module's Chromium fixture)
    ARTIFACTS,
    VIEWPORTS,
    ChatPage,
    _assert_cards,
    _click,
    _shown,
    browser,
)

ADMIN = "docs-admin-key"
SOLAR = ("元朗光伏電池廠落成", ["元朗光伏電池廠年產量達到五千萬片太陽能電池，僱用三百名本地員工。",
                             "廠房屋頂設有儲能系統，可在夜間為鄰近工業邨供電。"])
DATA_CENTRE = ["Sha Tin Data Centre opens.", "", "沙田數據中心正式啟用，為本地企業提供雲端", "運算及數據儲存服務。"]
QUESTION = "元朗光伏電池廠每年生產多少片太陽能電池？"


# -- HTML (fast) -----------------------------------------------------------------------------------


def _job(stage: str, status: str = "running", **progress: int) -> dict[str, Any]:
    return {"kind": "upload", "status": status, "stage": stage, "files": [{"name": "a<b>.pdf"}],
            "progress": {"files_total": 2, **progress}, "result": {}, "error": None}


def test_the_progress_bar_only_moves_forward():
    steps = [_job("queued"), _job("storing"), _job("reading", files_read=1), _job("read", files_read=2),
             _job("encoding", files_read=2, to_encode=40, encoded=0), _job("encoding", files_read=2, to_encode=40, encoded=20),
             _job("encoding", files_read=2, to_encode=40, encoded=40), _job("writing"), _job("swapped"), _job("opening"),
             _job("done", "done")]
    percents = [job_percent(j) for j in steps]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100, percents
    assert percents[5] == 50  # half the paragraphs encoded: half way through the encoding stretch (10-90)
    assert "reused from the cache" in render_job({**steps[7], "progress": {"files_total": 2, "to_encode": 0}})
    assert "reused from the cache" not in render_job(steps[3])
    html_ = render_job(steps[5])
    assert 'data-percent="50"' in html_ and "Paragraphs encoded 20/40" in html_ and "Files read 2/2" in html_
    assert "a&lt;b&gt;.pdf" in html_ and "<b>" not in html_
    assert JOB_STAGES["encoding"] in html_
    failed = render_job({**steps[3], "status": "failed", "stage": "failed", "error": "disk <full>"})
    assert "disk &lt;full&gt;" in failed and "as it was before" in failed


def test_document_html_is_escaped_and_asks_before_deleting():
    docs = [{"doc_id": 'x"><script>', "title": "<i>T</i>", "paragraphs": 3, "file": "x.txt",
             "flags": ["mojibake: 1 run"], "removed": 2}]
    html_ = render_documents("notes", docs, can_delete=True)
    assert "<script>" not in html_ and "<i>" not in html_ and "&lt;i&gt;T&lt;/i&gt;" in html_
    assert "3 段 paragraphs" in html_ and "⚑ mojibake: 1 run" in html_ and "2 項 removed" in html_
    assert 'data-act="delete"' in html_ and "doc-ask" not in html_
    assert 'data-act="delete"' not in render_documents("notes", docs)  # read-only: view only
    pending = render_documents("notes", docs, can_delete=True,
                               pending={"doc_id": 'x"><script>', "file": "x.txt", "doc_ids": ['x"><script>']})
    assert 'data-act="confirm"' in pending and 'data-act="cancel"' in pending and "x.txt" in pending
    view = render_document({"doc_id": "d", "title": "T", "path": "d.txt", "source": "javascript:alert(1)",
                            "paragraphs": [{"para_id": "d#p1", "text": "<img src=x onerror=alert(1)>"}]})
    assert "<img" not in view and "d#p1" in view and "href" not in view


# -- the handlers (fast: the hashing encoder) ------------------------------------------------------


@pytest.fixture(scope="module")
def docs_ui(tmp_path_factory) -> Any:
    """The documents page's handlers over a server's collections and jobs (no HTTP, no browser)."""
    from rag.ui.documents import DocumentsUI

    root = tmp_path_factory.mktemp("docs-page")
    settings, service = tiny_hashing(root, admin_keys=ADMIN, collections_dir=root / "collections", max_upload_mb=1)
    app = create_app(settings, service=service, ui=False)
    return DocumentsUI(app.state.collections, app.state.jobs, settings, parse_keys(settings.admin_keys))


def _admin(docs_ui: Any) -> dict[str, Any]:
    out = docs_ui.login(ADMIN, "default", docs_ui.new_state())
    assert "Logged in as admin" in out[1]
    return out[2]


def _files(tmp_path: Path, *files: tuple[str, bytes]) -> list[str]:
    paths = []
    for name, data in files:
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    return paths


def _last(steps: Iterator[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return list(steps)


BAD = [
    ("big.txt", ("一" * 400_000).encode(), "too large"),
    ("program.exe", b"MZ\x90\x00", "unsupported file type '.exe'"),
    ("scan.pdf", blank_pdf(), "PDF has no extractable text (scanned images? run OCR first)"),
    ("empty.txt", b"", "empty file"),
]


@pytest.mark.parametrize(("name", "data", "says"), BAD, ids=[b[0] for b in BAD])
def test_a_refused_upload_is_a_message_and_stores_nothing(docs_ui, tmp_path, name, data, says):
    state = _admin(docs_ui)
    paths = _files(tmp_path, ("fine.txt", "好的段落：西九文化區。".encode()), (name, data))
    steps = _last(docs_ui.upload("refused", paths, state))
    assert len(steps) == 1, "a refused upload starts no job"
    message = steps[0][0]
    assert "docs-msg-error" in message and says in message and "Traceback" not in message
    assert "refused" not in docs_ui.collections.names()


def test_uploads_and_deletes_need_the_admin_login(docs_ui, tmp_path):
    paths = _files(tmp_path, ("a.txt", "一段文字。".encode()))
    (message, *_), = _last(docs_ui.upload("mine", paths, docs_ui.new_state()))
    assert "Log in with an admin key" in message
    out = docs_ui.login("wrong", "default", docs_ui.new_state())
    assert "invalid admin key" in out[1] and out[2]["key"] is None
    assert "Enter an admin key" in docs_ui.login("  ", "default", docs_ui.new_state())[1]
    state = _admin(docs_ui)
    (message, *_), = _last(docs_ui.upload("default", paths, state))
    assert "the default collection is built by `rag index`" in message
    assert "Choose files first" in _last(docs_ui.upload("mine", [], state))[0][0]
    assert "must be a slug" in docs_ui.create("Bad Name", state)[2]
    dropdown, _, note, listing, _, _ = docs_ui.create("fresh-one", state)
    assert dropdown.value == "fresh-one" and "chosen" in note and "created by its first upload" in listing
    assert "fresh-one" not in docs_ui.collections.names()  # nothing on disk until an upload


def test_upload_view_and_delete_through_the_handlers(docs_ui, tmp_path):
    state = _admin(docs_ui)
    paths = _files(tmp_path, ("solar.docx", docx_bytes(SOLAR[0], SOLAR[1])), ("centre.pdf", pdf_bytes(DATA_CENTRE)))
    steps = _last(docs_ui.upload("handled", paths, state))
    bars = [re.search(r'data-status="(\w+)"[^>]*data-percent="(\d+)"', s[0]) for s in steps]
    assert all(bars), steps
    percents = [int(b.group(2)) for b in bars]
    assert percents == sorted(percents) and bars[-1].group(1) == "done" and percents[-1] == 100
    final = steps[-1]
    assert "Files read 2/2" in final[0] and "Added: centre, solar" in final[0]
    solar = docs_ui.collections.service("handled").document("solar")
    row = final[1].split('data-doc="solar"')[1]
    assert f"{len(solar.paragraph_ids)} 段 paragraphs" in row and len(solar.paragraph_ids) == len(SOLAR[1])
    assert final[2].value == "handled" and ("handled", "handled") in final[3].choices
    assert final[4] is None  # the file picker is emptied, and the browser's copies are gone (staged)
    assert not any(Path(f).exists() for f in paths)
    assert "Choose the files again" in _last(docs_ui.upload("handled", paths, state))[0][0]

    (_, _, view, _, _), = _last(docs_ui.command("view:1:solar", "handled", state))
    assert "solar#p1" in view and SOLAR[1][0] in view

    # Delete asks first; a confirmation for another document is refused; cancel keeps it.
    (_, listing, _, state, _), = _last(docs_ui.command("delete:2:solar", "handled", state))
    assert 'data-act="confirm"' in listing and "solar.docx" in listing
    (message, _, _, state, _), = _last(docs_ui.command("confirm:3:centre", "handled", state))
    assert "Press “Delete” again" in message
    (_, listing, _, state, _), = _last(docs_ui.command("delete:4:solar", "handled", state))
    (_, listing, _, state, _), = _last(docs_ui.command("cancel:5:solar", "handled", state))
    assert "doc-ask" not in listing and state["pending"] is None
    (_, listing, _, state, _), = _last(docs_ui.command("delete:6:solar", "handled", state))
    steps = _last(docs_ui.command("confirm:7:solar", "handled", state))
    assert 'data-status="done"' in steps[-1][0] and "Removed: solar" in steps[-1][0]
    assert 'data-doc="solar"' not in steps[-1][1] and 'data-doc="centre"' in steps[-1][1]
    assert [d.doc_id for d in docs_ui.collections.service("handled").documents()] == ["centre"]


def test_the_chat_asks_the_chosen_collection_and_briefs_across_collections(docs_ui, tmp_path):
    """A question goes to the session's collection; a briefing may hold answers from several."""
    from rag.ui.chat import ChatUI

    state = _admin(docs_ui)
    paths = _files(tmp_path, ("memo.txt", "光伏電池廠在元朗落成。\n\n元朗光伏電池廠年產量達到五千萬片。".encode()))
    assert 'data-status="done"' in _last(docs_ui.upload("asked", paths, state))[-1][0]
    ui = ChatUI(docs_ui.collections.default, docs_ui.collections)
    chat_state = None
    for collection, question in (("asked", "元朗光伏電池廠年產量多少？"), (None, "香港如何推動新型工業化？")):
        *_, (_, _, sources, chat_state) = ui.respond(question, [], chat_state, "original", 3, None, collection)
        want = docs_ui.collections.service(collection).ask(question, 3).to_dict()
        assert chat_state["answers"][str(chat_state["turn"])]["citations"] == want["citations"] != []
        assert want["citations"][0]["para_id"] in sources
        chat_state = ui.brief_command(f"add:{chat_state['turn']}", chat_state, "original")[1]
    assert [a["collection"] for a in chat_state["briefing"]] == ["asked", "default"]
    assert chat_state["briefing"][0]["citations"][0]["para_id"].startswith("memo#")
    _, md, heading = ui.exports(chat_state, "original")
    text = Path(md.value["path"]).read_text(encoding="utf-8")
    for item in chat_state["briefing"]:
        assert item["citations"][0]["para_id"] in text
    assert heading.endswith("· 2")
    assert "No source found" not in ui.status("asked") and "`asked`" in ui.status("asked")
    assert "no collection named 'gone'" in ui.status("gone")


# -- the browser, the real model (slow) ------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory, encoder):
    """One real server for both widths: the tiny corpus as ``default``, an admin key, collections in tmp."""
    from rag.service import RagService

    settings, index_dir = tiny_index(tmp_path_factory.mktemp("ui"), encoder)
    root = tmp_path_factory.mktemp("ui-docs")
    settings = settings.model_copy(update={"admin_keys": ADMIN, "collections_dir": root / "collections"})
    service = RagService.open(index_dir, settings, encoder=encoder)
    with serve_app(create_app(settings, service=service)) as srv:
        yield srv, root


class DocsPage:
    """A driver over the documents tab of a ChatPage's page."""

    def __init__(self, chat: ChatPage, width: str) -> None:
        self.chat = chat
        self.page = chat.page
        self.width = width

    def shot(self, step: str) -> Path:
        path = ARTIFACTS / f"docs-{step}-{self.width}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert self.page.evaluate("() => document.documentElement.scrollWidth") <= int(self.width), \
            f"horizontal scrolling at {step}"
        return path

    def tab(self, name: str) -> None:
        _click(self.chat, self.page.get_by_role("tab", name=name))

    def choose(self, dropdown: str, option: str) -> None:
        _click(self.chat, self.page.locator(f"{dropdown} input"))
        _click(self.chat, self.page.get_by_role("option", name=option, exact=True))

    def job(self) -> str:
        return self.page.locator("#docs-job").inner_text()

    def doc_button(self, doc_id: str, act: str) -> Any:
        return self.page.locator(f"#docs-list li.doc-row[data-doc='{doc_id}'] button[data-act='{act}']")


def _pick_files(page: Any, *paths: Path) -> None:
    """Choose files in the upload box and wait until the browser has sent them to the server."""
    page.set_input_files("#docs-files input[type=file]", [str(p) for p in paths])
    page.wait_for_function("""(names) => { const shown = [...document.querySelectorAll('#docs-files td.filename')]
        .map(td => td.getAttribute('aria-label')); return names.every(n => shown.includes(n)); }""",
                           arg=[p.name for p in paths])


def _watch_progress(page: Any) -> None:
    """Record every state the job's progress bar shows (status, percent, counts)."""
    page.evaluate("""() => { window.__bars = []; clearInterval(window.__barTimer);
        window.__barTimer = setInterval(() => { const j = document.querySelector('#docs-job .job');
          if (!j) return; const s = [j.dataset.status, Number(j.dataset.percent), j.innerText].join('|');
          if (window.__bars[window.__bars.length - 1] !== s) window.__bars.push(s); }, 4); }""")


def _bars(page: Any) -> list[tuple[str, int, str]]:
    found = page.evaluate("() => { clearInterval(window.__barTimer); return window.__bars; }")
    return [(s.split("|")[0], int(s.split("|")[1]), s.split("|", 2)[2]) for s in found]


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("width", VIEWPORTS)
def test_upload_ask_delete_in_the_browser(docs_server, browser, tmp_path, width):  # noqa: F811
    server, _ = docs_server
    collections = server.app.state.collections
    name = f"plant-{width}"
    context = browser.new_context(**VIEWPORTS[width], locale="zh-HK")
    chat = ChatPage(context.new_page(), server.base_url)
    page = chat.page
    docs = DocsPage(chat, width)

    # The documents tab: the default collection's documents, read-only until an admin logs in.
    docs.tab("文件 Documents")
    page.wait_for_selector("#docs-list .docs-list[data-collection='default'] li.doc-row")
    assert page.locator("#docs-list button[data-act='delete']").count() == 0
    assert page.locator("#docs-list li.doc-row").count() == len(collections.service("default").documents())
    page.fill("#admin-key input", "not-the-key")
    _click(chat, page.locator("#admin-login"))
    page.wait_for_function("() => document.querySelector('#docs-job').innerText.includes('invalid admin key')")
    assert not page.locator("#docs-tools").is_visible()
    page.fill("#admin-key input", ADMIN)
    _click(chat, page.locator("#admin-login"))
    page.wait_for_selector("#docs-tools", state="visible")
    assert "Logged in as admin" in docs.job() and not page.locator("#admin-key").is_visible()
    docs.shot("1-admin")

    # A new collection, then a refused file (a scan without text): said plainly, nothing stored.
    page.fill("#docs-new textarea", name)
    _click(chat, page.locator("#docs-create"))
    page.wait_for_function("(n) => document.querySelector('#docs-collection input').value === n", arg=name)
    (tmp_path / "scan.pdf").write_bytes(blank_pdf())
    _pick_files(page, tmp_path / "scan.pdf")
    _click(chat, page.locator("#docs-upload"))
    page.wait_for_selector("#docs-job .docs-msg-error")
    assert "scan.pdf: PDF has no extractable text (scanned images? run OCR first)" in docs.job()
    assert "Traceback" not in page.locator("body").inner_text() and name not in collections.names()
    docs.shot("2-refused")

    # Upload a .docx and a .pdf; the bar runs to done, driven by the job's counts.
    _click(chat, page.locator("#docs-files button[aria-label='Clear']").first)
    # (a line of each file is new at each width: its paragraph is encoded, not found in the cache)
    (tmp_path / "solar.docx").write_bytes(docx_bytes(SOLAR[0], [*SOLAR[1], f"本文件供 {width} 像素寬的頁面測試。"]))
    (tmp_path / "centre.pdf").write_bytes(pdf_bytes([*DATA_CENTRE, "", f"Page test at {width} px."]))
    _pick_files(page, tmp_path / "solar.docx", tmp_path / "centre.pdf")
    _watch_progress(page)
    _click(chat, page.locator("#docs-upload"))
    page.wait_for_selector("#docs-job .job[data-status='done']", timeout=120_000)
    bars = _bars(page)
    assert bars[-1][:2] == ("done", 100) and any(status != "done" for status, _, _ in bars), bars
    assert [p for _, p, _ in bars] == sorted(p for _, p, _ in bars), bars
    result = collections.service(name)
    assert sorted(d.doc_id for d in result.documents()) == ["centre", "solar"]
    encoded = re.search(r"Paragraphs encoded (\d+)/(\d+)", bars[-1][2])
    assert "Files read 2/2" in bars[-1][2] and encoded and encoded.group(1) == encoded.group(2), bars[-1]
    docs.shot("3-uploaded")

    # The list: paragraph counts and cleaning flags as the index has them; a document's paragraphs.
    page.wait_for_selector(f"#docs-list .docs-list[data-collection='{name}'] li.doc-row[data-doc='solar']")
    for d in result.documents():
        row = page.locator(f"#docs-list li.doc-row[data-doc='{d.doc_id}']")
        assert f"{len(d.paragraph_ids)} 段 paragraphs" in row.inner_text()
        assert ("No cleaning flags" in row.inner_text()) == (not d.flags and not d.removed)
    _click(chat, docs.doc_button("solar", "view"))
    page.wait_for_selector("#docs-view .doc-view[data-doc='solar']")
    shown = page.locator("#docs-view .para-id").all_inner_texts()
    assert shown == result.document("solar").paragraph_ids
    assert SOLAR[1][0] in page.locator("#docs-view").inner_text()
    docs.shot("4-paragraphs")

    # Ask that collection in the chat: the new document is cited.
    docs.tab("問答 Chat")
    docs.choose("#collection", name)
    page.wait_for_function("(n) => document.querySelector('#status').innerText.includes(n)", arg=name)
    chat.turn = 0  # another collection: a new conversation
    answer = result.ask(QUESTION, 3).to_dict()
    assert not answer["abstained"] and answer["citations"][0]["doc_id"] == "solar", answer
    chat.ask(QUESTION, answer["answer"])
    _assert_cards(chat, answer)
    assert chat.card(1).locator(".src-id").inner_text().startswith("solar#p")
    docs.shot("5-answer")

    # Delete it: a confirmation first, then the job; the list no longer has it.
    docs.tab("文件 Documents")
    _click(chat, docs.doc_button("solar", "delete"))
    page.wait_for_selector("#docs-list li.doc-row[data-doc='solar'] .doc-ask")
    assert "solar.docx" in page.locator("#docs-list .doc-ask").inner_text()
    assert [d.doc_id for d in collections.service(name).documents()] == ["centre", "solar"]  # not yet
    docs.shot("6-confirm")
    _watch_progress(page)
    _click(chat, docs.doc_button("solar", "confirm"))
    page.wait_for_selector("#docs-job .job[data-status='done']", timeout=120_000)
    bars = _bars(page)
    assert bars[-1][:2] == ("done", 100) and "Removed: solar" in bars[-1][2], bars
    page.wait_for_function("() => !document.querySelector(\"#docs-list li.doc-row[data-doc='solar']\")")
    assert page.locator("#docs-list li.doc-row[data-doc='centre']").count() == 1
    docs.shot("7-deleted")

    # Asked again: an abstention, or another document's citation, never the deleted one.
    docs.tab("問答 Chat")
    chat.clear()
    after = collections.service(name).ask(QUESTION, 3).to_dict()
    assert all(c["doc_id"] != "solar" for c in after["citations"]), after
    chat.ask(QUESTION, _shown(after))
    if after["abstained"]:
        assert page.locator("#sources .no-source").is_visible()
    else:
        _assert_cards(chat, after)
    assert "solar#" not in page.locator("#sources").inner_text()
    docs.shot("8-asked-again")
    assert not chat.dialogs
    context.close()


@pytest.mark.slow
@pytest.mark.parametrize("width", VIEWPORTS)
def test_without_admin_keys_the_page_is_read_only(browser, tmp_path_factory, width):  # noqa: F811
    """No RAG_ADMIN_KEYS: the page says uploads are off and lists the documents, nothing more."""
    settings, service = tiny_hashing(tmp_path_factory.mktemp("docs-off"))
    with serve_app(create_app(settings, service=service)) as server:
        context = browser.new_context(**VIEWPORTS[width])
        chat = ChatPage(context.new_page(), server.base_url)
        docs = DocsPage(chat, width)
        docs.tab("文件 Documents")
        page = chat.page
        page.wait_for_selector("#docs-list li.doc-row")
        assert "上載及刪除已關閉" in page.locator("#docs-notice").inner_text()
        assert "set RAG_ADMIN_KEYS" in page.locator("#docs-notice").inner_text()
        assert not page.locator("#admin-key").is_visible() and not page.locator("#docs-tools").is_visible()
        assert page.locator("#docs-list button[data-act='delete']").count() == 0
        assert page.locator("#docs-list li.doc-row").count() == len(service.documents())
        _click(chat, page.locator("#docs-list button[data-act='view']").first)
        page.wait_for_selector("#docs-view .doc-view .para-id")
        docs.shot("read-only")
        context.close()
