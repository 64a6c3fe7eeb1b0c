"""The Gradio chat, mounted at ``/`` of the API app; it calls the service in-process.

Layout: the conversation on the left (stacked on top on a phone), the numbered source cards
of the latest answer and the briefing panel on the right. Under the question: the script toggle
(re-renders every answer), the answer-mode toggle (quoted or written by the model, for the
questions asked after it is set; shown only when the server has a model that writes) and k. ``chat.js`` (loaded in the page
head) opens a card from its ``[n]`` marker, copies citations and sends the briefing actions
("add to briefing", move, remove); ``chat.css`` styles them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a server

import gradio as gr  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from rag.answer.steps import Draft, Final, Pending, Piece, Retrieved  # noqa: E402
from rag.collections import DEFAULT, Collections  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.errors import ModelBusyError, RagError  # noqa: E402
from rag.uploads import Jobs  # noqa: E402

from .render import (  # noqa: E402
    EMPTY_SOURCES,
    SCRIPT_CHOICES,
    escape_md,
    render_answer,
    render_briefing,
    render_sources,
    render_writing,
)

log = logging.getLogger("rag.ui")
HERE = Path(__file__).resolve().parent
MAX_TURNS = 10  # earlier turns kept as retrieval context
PENDING_EVERY_S = 0.1  # the sentence being written is redrawn at most this often

EXAMPLES = [
    ("繁", "香港如何推動新型工業化？"),
    ("简", "什么是新质生产力？"),
    ("EN", "How is Hong Kong promoting new industrialisation?"),
]
THINKING = "<span class='thinking'>正在查找來源… Searching the sources…</span>"
COMPOSING = "<span class='thinking'>找到 {n} 段，正在組織答案… Found {n} paragraphs; composing the answer…</span>"
LOADING = "索引載入中… Index is loading…"
BUSY = ("<span class='busy-msg'>⏳ 語言模型正忙，請約 {s} 秒後再問。"
        "The language model is busy with other questions; please ask again in about {s} s.</span>")
# The answer-mode toggle: what the next question gets (answers already shown stay as they are).
MODE_CHOICES = [("引用原句 Quoted", "extractive"), ("模型撰寫 Written", "written")]
MODE_LABEL = "下一個答案 Next answer"
MODE_INFO = "只影響之後的提問 Applies to the questions you ask next"
COLLECTION_LABEL = "集合 Collection"

HEADER = """
<div class="app-header">
  <div class="app-title">港聞引證問答 <span class="app-title-en">HK Press Q&amp;A</span></div>
  <div class="app-sub">以繁體、简体或 English 提問；每個答案都引用原文段落。
  <span class="app-sub-en">Every answer cites the exact source paragraphs.</span></div>
</div>
"""


def _k_max(settings: Settings | None) -> int:
    """What ``k`` can change: the paragraphs an answer may draw on (3 extractive, 5 generated)."""
    from rag.answer.compose import MAX_GEN_PARAGRAPHS
    from rag.answer.extractive import MAX_PARAGRAPHS

    return MAX_GEN_PARAGRAPHS if settings is not None and settings.llm_base_url else MAX_PARAGRAPHS


class ChatUI:
    """Event handlers over the default collection's holder and, when given, every collection of
    the server (``collections``: each question goes to the one the session chose); the state
    is per browser session.

    Answers are kept in the source's own script (``state["answers"]``, by turn, each with its
    collection) and converted for display, so the script toggle re-renders them without asking again."""

    def __init__(self, holder: Any, collections: Collections | None = None) -> None:
        self.holder = holder
        self.collections = collections

    def _holder(self, collection: str | None) -> Any:
        """The holder of ``collection`` (unset or without collections: the default one)."""
        if self.collections is None or not collection:
            return self.holder
        return self.collections.holder(collection)

    def _service(self, collection: str | None) -> Any:
        return self._holder(collection).get()

    @staticmethod
    def new_state() -> dict[str, Any]:
        return {"turns": [], "turn": 0, "answers": {}, "bubbles": [], "briefing": []}

    # -- rendering ----------------------------------------------------------------------------
    def _flags(self, answer: dict[str, Any], collection: str | None = None) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for c in answer.get("citations") or ():
            try:
                out[c["doc_id"]] = list(self._service(collection or answer.get("collection")).document(c["doc_id"]).flags)
            except RagError:
                pass
        return out

    @staticmethod
    def _shown(answer: dict[str, Any], script: str) -> dict[str, Any]:
        from rag.answer.display import in_script

        return in_script(answer_from_dict(answer), script).to_dict()

    @staticmethod
    def _bubble(shown: dict[str, Any], turn: int) -> dict[str, str]:
        return {"role": "assistant", "content": render_answer(
            shown["answer"], len(shown["citations"]), turn, abstained=shown["abstained"],
            warnings=shown.get("warnings") or (), reason=shown.get("abstain_reason"), actions=True,
            mode=shown.get("mode") or "extractive")}

    # -- events -------------------------------------------------------------------------------
    def respond(self, question: str, chat: list[dict[str, Any]] | None, state: dict[str, Any] | None,
                script: str, k: int, answer_mode: str | None = None,
                collection: str | None = None) -> Iterator[tuple[Any, ...]]:
        """Answer in steps, each shown as it happens: the question with a placeholder, the
        retrieval result, the answer. With a language model writing: the extractive answer and
        its sources first, then the model's tokens as it decodes them (each sentence final once
        checked), then the checked answer. Nothing waits between steps (no replay of a finished
        text). ``answer_mode`` (the toggle: written or extractive; None: the server's default)
        applies to this question only; ``collection`` (the session's choice; None: default) is
        the one asked. A full model queue is said plainly, with when to retry."""
        state = dict(state or self.new_state())
        chat = list(chat or [])
        question = (question or "").strip()
        if not question:
            yield "", chat, gr.skip(), state
            return
        chat += [{"role": "user", "content": escape_md(question)}, {"role": "assistant", "content": THINKING}]
        yield "", chat, gr.skip(), state
        history = state["turns"][-2 * MAX_TURNS :]
        answer: dict[str, Any] | None = None
        turn = state["turn"] + 1
        draft: dict[str, Any] | None = None
        written, pending, shown_at = "", "", 0.0
        try:
            service = self._service(collection)
            for step in service.ask_steps(question, int(k), history=history, answer_mode=answer_mode or None):
                match step:
                    case Retrieved(hits):
                        chat[-1] = {"role": "assistant", "content": COMPOSING.format(n=len(hits))}
                        yield "", chat, gr.skip(), state
                    case Draft(extractive):  # the extractive answer and its sources, while the model writes
                        draft = self._shown(extractive.to_dict(), script)
                        chat[-1] = {"role": "assistant", "content": render_writing(draft, turn, "", "")}
                        yield "", chat, render_sources(draft, turn, self._flags(draft, collection)), state
                    case Piece(text) | Pending(text) if draft is not None:
                        is_piece = isinstance(step, Piece)
                        if is_piece:
                            written += _in_script(text, script)
                        pending = "" if is_piece else _in_script(text, script)
                        if is_piece or time.monotonic() - shown_at >= PENDING_EVERY_S:
                            shown_at = time.monotonic()
                            chat[-1] = {"role": "assistant", "content": render_writing(draft, turn, written, pending)}
                            yield "", chat, gr.skip(), state
                    case Final(final):
                        answer = final.to_dict()
        except ModelBusyError as exc:
            chat[-1] = {"role": "assistant", "content": BUSY.format(s=exc.retry_after_s)}
            yield "", chat, gr.skip(), state
            return
        except RagError as exc:
            chat[-1] = {"role": "assistant", "content": f"⚠️ {escape_md(str(exc))}"}
            yield "", chat, gr.skip(), state
            return
        except Exception:
            log.exception("the chat failed to answer")
            chat[-1] = {"role": "assistant", "content": "⚠️ 內部錯誤 Internal error; the server log has the details."}
            yield "", chat, gr.skip(), state
            return
        assert answer is not None
        shown = self._shown(answer, script)
        chat[-1] = self._bubble(shown, turn)
        state = {
            **state,
            "turns": [*history, {"role": "user", "content": question}, {"role": "assistant", "content": answer["answer"]}],
            "turn": turn,
            "answers": {**state["answers"], str(turn): {**answer, "question": question, "id": uuid.uuid4().hex,
                                                        "collection": collection or DEFAULT}},
            "bubbles": [*state["bubbles"], [len(chat) - 1, turn]],
        }
        yield "", chat, render_sources(shown, turn, self._flags(answer, collection)), state

    def rescript(self, chat: list[dict[str, Any]] | None, state: dict[str, Any] | None,
                 script: str) -> tuple[Any, ...]:
        """Every shown answer and the latest sources again in ``script``; nothing is asked again."""
        if not state or not state.get("bubbles") or not chat:
            return gr.skip(), gr.skip()
        chat = list(chat)
        for index, turn in state["bubbles"]:
            answer = state["answers"].get(str(turn))
            if answer is not None and index < len(chat):
                chat[index] = self._bubble(self._shown(answer, script), turn)
        turn = state["turn"]
        latest = state["answers"][str(turn)]
        return chat, render_sources(self._shown(latest, script), turn, self._flags(latest))

    def clear(self, state: dict[str, Any] | None) -> tuple[Any, ...]:
        """A new conversation; the briefing is kept."""
        fresh = self.new_state()
        fresh["briefing"] = list((state or {}).get("briefing") or [])
        return [], EMPTY_SOURCES, fresh

    def switch(self, collection: str | None, state: dict[str, Any] | None) -> tuple[Any, ...]:
        """Another collection: a new conversation with it (the briefing is kept), its status line;
        the example questions (about the default corpus) only with the default collection."""
        return (*self.clear(state), *self.status_tick(collection), gr.Row(visible=(collection or DEFAULT) == DEFAULT))

    def collection_choices(self) -> Any:
        """The chat's collection dropdown with the collections there are now (its value kept)."""
        if self.collections is None:
            return gr.Dropdown(visible=False)
        from .documents import collection_choices

        return gr.Dropdown(choices=collection_choices(self.collections), visible=True)

    # -- briefing -----------------------------------------------------------------------------
    def brief_command(self, command: str, state: dict[str, Any] | None, script: str) -> tuple[Any, ...]:
        """``add:<turn>``, ``up:<i>``, ``down:<i>``, ``remove:<i>`` (a trailing ``:<nonce>`` is ignored)."""
        state = dict(state or self.new_state())
        items = list(state.get("briefing") or [])
        act, _, rest = (command or "").partition(":")
        arg = rest.split(":")[0]
        try:
            n = int(arg)
        except ValueError:
            return gr.skip(), state, gr.skip(), gr.skip(), gr.skip()
        if act == "add":
            answer = state["answers"].get(str(n))
            if answer is not None and all(item["id"] != answer["id"] for item in items):
                items.append(answer)
        elif act in ("up", "down") and 0 <= n < len(items):
            j = n - 1 if act == "up" else n + 1
            if 0 <= j < len(items):
                items[n], items[j] = items[j], items[n]
        elif act == "remove" and 0 <= n < len(items):
            del items[n]
        state["briefing"] = items
        return (render_briefing(items), state, *self.exports(state, script))

    def exports(self, state: dict[str, Any] | None, script: str) -> tuple[Any, ...]:
        """The two download buttons (.docx, .md) over the current briefing, or hidden when empty;
        and the panel's heading with the item count."""
        items = list((state or {}).get("briefing") or [])
        heading = f"### 簡報 Briefing · {len(items)}"
        if not items:
            return gr.DownloadButton(value=None, visible=False), gr.DownloadButton(value=None, visible=False), heading
        from rag import briefing

        doc = briefing.from_answers(self.holder.get(), items, script=script,
                                    service_of=lambda a: self._service(a.get("collection")))
        folder = _export_folder()
        paths = []
        for fmt in ("docx", "md"):
            path = folder / briefing.file_name(doc, fmt)
            path.write_bytes(briefing.render(doc, fmt))
            paths.append(path)
        return (gr.DownloadButton(value=str(paths[0]), visible=True),
                gr.DownloadButton(value=str(paths[1]), visible=True), heading)

    def rescript_all(self, chat: list[dict[str, Any]] | None, state: dict[str, Any] | None,
                     script: str) -> tuple[Any, ...]:
        return (*self.rescript(chat, state, script), *self.exports(state, script))

    # -- status -------------------------------------------------------------------------------
    def status(self, collection: str | None = None) -> str:
        """The status line of the chosen collection's index: loading, ready (its counts), or why not."""
        try:
            holder = self._holder(collection)
        except RagError as exc:  # a collection deleted from disk since it was listed
            return f"⚠️ {escape_md(str(exc))}"
        try:
            info = holder.info()
        except RagError as exc:
            if holder.loading:
                return LOADING
            return f"⚠️ {escape_md(holder.not_ready_reason() if holder is self.holder else str(exc))}"
        model = info.get("model", {}).get("id") or info.get("model", {}).get("name") or "?"
        named = f"集合 Collection `{escape_md(collection)}` · " if collection and collection != DEFAULT else ""
        line = (f"就緒 Ready · {named}索引 Index: {info.get('documents')} 篇文件 documents · {info.get('paragraphs')} 段 paragraphs"
                f" · model `{escape_md(str(model))}` · [API docs](/docs)")
        llm = info.get("llm", {})
        if llm.get("lean"):  # the language model was asked for but could not be had: say so, and why
            line += (" · ⚠️ 語言模型未能載入，以精簡模式運行 The language model is off (lean mode): "
                     f"{escape_md(str(llm.get('error')))}")
        return line

    def status_tick(self, collection: str | None = None) -> tuple[str, Any, Any]:
        """The status line, polled while the index loads; the timer stops once it is settled.
        With it the answer-mode toggle: shown, set to the server's default, once the loaded
        service has a model that writes; hidden otherwise."""
        try:
            loading = bool(self._holder(collection).loading)
        except RagError:
            loading = False
        return self.status(collection), gr.Timer(active=loading or bool(self.holder.loading)), self.mode_toggle()

    def mode_toggle(self) -> Any:
        service = self.holder.service if not self.holder.loading else None
        if service is None or getattr(service, "writer", None) is None:
            return gr.Radio(visible=False, interactive=False)
        return gr.Radio(visible=True, interactive=True, value=getattr(service, "default_answer_mode", "extractive"))


EXPORTS = Path(tempfile.gettempdir()) / "rag-briefings"
EXPORT_TTL_S = 3600  # Gradio copies each file into its own cache when it is sent


def _export_folder() -> Path:
    """A fresh folder for one export; folders older than an hour are removed on the way."""
    EXPORTS.mkdir(exist_ok=True)
    now = time.time()
    for old in EXPORTS.iterdir():
        try:
            if now - old.stat().st_mtime > EXPORT_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(dir=EXPORTS))


def _in_script(text: str, script: str) -> str:
    """Streamed answer text in the display script (the answer's own conversion)."""
    from rag.text.normalise import convert_script
    from rag.text.script import script_config

    return convert_script(text, script_config(script))


def answer_from_dict(d: dict[str, Any]) -> Any:
    """An ``Answer`` back from its ``to_dict()`` form (the chat keeps answers as plain dicts)."""
    from rag.types import UNKNOWN, Answer, Citation, Notice

    citations = tuple(
        Citation(**{**{k: v for k, v in c.items() if k in Citation.__dataclass_fields__},
                    "highlights": tuple(tuple(h) for h in c.get("highlights") or ())})
        for c in d.get("citations") or ()
    )
    warnings = tuple(Notice(UNKNOWN, w) for w in d.get("warnings") or ())  # the dict keeps only their text
    return Answer(d["answer"], bool(d["abstained"]), citations, dict(d.get("timings_ms") or {}),
                  warnings, d.get("abstain_reason"), d.get("mode") or "extractive")


def build_blocks(holder: Any, settings: Settings | None = None, *, collections: Collections | None = None,
                 jobs: Jobs | None = None, admin_keys: list[str] | None = None) -> gr.Blocks:
    """The chat (and, given the server's ``collections`` and ``jobs``, its collection selector
    and the documents page as a second tab)."""
    ui = ChatUI(holder, collections)
    k_max = _k_max(settings)
    with gr.Blocks(title="港聞引證問答 · HK Press Q&A", analytics_enabled=False) as demo:
        state = gr.State(ui.new_state())
        gr.HTML(HEADER, elem_id="app-header", padding=False)
        status = gr.Markdown(LOADING, elem_id="status")
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("問答 Chat", id="chat-tab", elem_id="chat-tab") as chat_tab:
                with gr.Row(equal_height=False, elem_id="main-row"):
                    with gr.Column(scale=3, min_width=340, elem_id="chat-col"):
                        # The session's collection: every question goes to it (hidden without collections).
                        with gr.Row(elem_id="collection-row", equal_height=True, visible=collections is not None):
                            gr.HTML(f"<label class='collection-label' for='collection'>{COLLECTION_LABEL}</label>",
                                    padding=False, container=False)
                            collection = gr.Dropdown([("default 預設", DEFAULT)], value=DEFAULT, show_label=False,
                                                     label=COLLECTION_LABEL, elem_id="collection", container=False,
                                                     interactive=True, min_width=160)
                        chatbot = gr.Chatbot(
                            elem_id="chat", show_label=False, height=560, min_height=260,
                            buttons=[], feedback_options=None, layout="bubble",
                            placeholder="<div class='chat-placeholder'>問一個關於香港新型工業化、新質生產力的問題<br>"
                                        "<span>Ask about Hong Kong's new industrialisation</span></div>",
                        )
                        with gr.Row(elem_id="ask-row", equal_height=True):
                            box = gr.Textbox(
                                elem_id="question", show_label=False, scale=5, lines=1, max_lines=4, autofocus=True,
                                placeholder="輸入問題… 繁體 / 简体 / English", submit_btn=False, container=False,
                            )
                            send = gr.Button("提問 Ask", variant="primary", scale=1, min_width=88, elem_id="ask-btn")
                        with gr.Row(elem_id="examples") as examples:
                            gr.HTML("<span class='examples-label'>試試問 Try:</span>", padding=False, container=False)
                            example_buttons = [
                                (gr.Button(f"{tag} · {q}", size="sm", elem_classes=["example-q"]), q) for tag, q in EXAMPLES
                            ]
                        with gr.Row(elem_id="options", equal_height=True):
                            script = gr.Radio(SCRIPT_CHOICES, value="original", label="顯示文字 Script", elem_id="script",
                                              scale=3)
                            # Hidden until the loaded service has a model that writes (status_tick), and
                            # unset until then: a question asked meanwhile gets the server's default.
                            answer_mode = gr.Radio(MODE_CHOICES, value=None, label=MODE_LABEL, info=MODE_INFO,
                                                   elem_id="answer-mode", scale=2, min_width=220, visible=False,
                                                   interactive=False)
                            k = gr.Slider(1, k_max, value=k_max, step=1, elem_id="k", scale=2, min_width=240,
                                          label="答案最多引用段落 Paragraphs an answer may cite (k)")
                    with gr.Column(scale=2, min_width=320, elem_id="src-col"):
                        sources = gr.HTML(EMPTY_SOURCES, elem_id="sources", padding=False)
                        with gr.Group(elem_id="briefing"):
                            brief_heading = gr.Markdown("### 簡報 Briefing · 0", elem_id="brief-heading")
                            brief_panel = gr.HTML(render_briefing([]), elem_id="brief-panel", padding=False)
                            with gr.Row(elem_id="brief-export"):
                                dl_docx = gr.DownloadButton("⬇ 匯出 Export .docx", visible=False, size="sm",
                                                            elem_id="brief-docx", variant="primary")
                                dl_md = gr.DownloadButton("⬇ 匯出 Export .md", visible=False, size="sm",
                                                          elem_id="brief-md")
                        # chat.js writes "add:<turn>", "up:<i>", ... here and clicks the button.
                        command = gr.Textbox(visible="hidden", elem_id="brief-cmd")
                        run_command = gr.Button(visible="hidden", elem_id="brief-cmd-btn")
            docs_page = None
            if collections is not None and jobs is not None and settings is not None:
                from .documents import DocumentsUI, build_page

                docs = DocumentsUI(collections, jobs, settings, admin_keys or [])
                with gr.Tab("文件 Documents", id="docs-tab", elem_id="docs-tab") as docs_tab:
                    docs_page = build_page(docs, collection)
        timer = gr.Timer(1.0, active=True)

        ask_io: dict[str, Any] = {"fn": ui.respond, "inputs": [box, chatbot, state, script, k, answer_mode, collection],
                  "outputs": [box, chatbot, sources, state], "show_progress": "hidden"}
        box.submit(**ask_io)
        send.click(**ask_io)
        for button, question in example_buttons:
            button.click(lambda q=question: q, None, box, queue=False).then(**ask_io)
        exports = [dl_docx, dl_md, brief_heading]
        script.change(ui.rescript_all, [chatbot, state, script], [chatbot, sources, *exports],
                      show_progress="hidden")
        run_command.click(ui.brief_command, [command, state, script], [brief_panel, state, *exports],
                          show_progress="hidden")
        chatbot.clear(ui.clear, state, [chatbot, sources, state], queue=False)
        ticked = [status, timer, answer_mode]
        # .input: the user's choice (a handler refreshing the choices must not start a new conversation).
        collection.input(ui.switch, [collection, state], [chatbot, sources, state, *ticked, examples],
                         show_progress="hidden")
        demo.load(ui.status_tick, collection, ticked, show_progress="hidden")
        timer.tick(ui.status_tick, collection, ticked, show_progress="hidden")
        if collections is not None:
            demo.load(ui.collection_choices, None, collection, show_progress="hidden")
            chat_tab.select(ui.collection_choices, None, collection, show_progress="hidden")
        if docs_page is not None:
            page_io = ([docs_page["collection"], docs_page["state"]],
                       [docs_page["notice"], docs_page["collection"], docs_page["listing"]])
            demo.load(docs.open_page, *page_io)
            docs_tab.select(docs.open_page, *page_io, show_progress="hidden")
    demo.queue(default_concurrency_limit=4)
    return demo


def _theme() -> gr.themes.Base:
    fonts = ["Noto Sans CJK TC", "Noto Sans TC", "PingFang TC", "Microsoft JhengHei", "Noto Sans CJK SC",
             "PingFang SC", "system-ui", "sans-serif"]
    # Local font names only: the default theme fetches Google Fonts, which an offline server cannot.
    return gr.themes.Soft(
        primary_hue="teal", neutral_hue="slate", font=fonts,
        font_mono=["Noto Sans Mono CJK TC", "ui-monospace", "monospace"],
    )


def mount_ui(app: FastAPI, holder: Any, settings: Settings) -> FastAPI:
    """Mount the chat at ``/``; routes registered on ``app`` before this keep precedence."""
    from rag.api.auth import key_matches, parse_keys

    admin_keys = parse_keys(settings.admin_keys)
    demo = build_blocks(holder, settings, collections=getattr(app.state, "collections", None),
                        jobs=getattr(app.state, "jobs", None), admin_keys=admin_keys)
    js = (HERE / "chat.js").read_text(encoding="utf-8")
    auth = None
    if settings.api_keys:
        keys = parse_keys(settings.api_keys)

        def auth(username: str, password: str) -> bool:  # any user name, an API (or admin) key as password
            return key_matches(password, keys) | key_matches(password, admin_keys)

    return gr.mount_gradio_app(
        app, demo, path="/", theme=_theme(), css_paths=[HERE / "chat.css"],
        head=f"<script>{js}</script>", footer_links=[], run_history=False,
        auth=auth, auth_message="Log in with any user name and an API key (RAG_API_KEYS) as the password.",
        # Files the browser sends (the documents page) stop at the upload limit, before they are stored.
        max_file_size=settings.max_upload_mb * 2**20,
        show_error=False, ssr_mode=False, mcp_server=False,
    )
