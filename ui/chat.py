"""The Gradio chat, mounted at ``/`` of the API app; it calls the service in-process.

Layout: the conversation on the left (stacked on top on a phone), the numbered source cards
of the latest answer on the right. ``chat.js`` (loaded in the page head) opens a card from
its ``[n]`` marker and copies citations; ``chat.css`` styles both.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a server

import gradio as gr  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from rag.config import Settings  # noqa: E402
from rag.errors import RagError  # noqa: E402

from .render import EMPTY_SOURCES, SCRIPT_CHOICES, escape_md, render_answer, render_sources  # noqa: E402

log = logging.getLogger("rag.ui")
HERE = Path(__file__).resolve().parent
MAX_TURNS = 10  # earlier turns kept as retrieval context
STREAM_DELAY_S = 0.03  # pacing between streamed pieces, so the answer visibly streams

EXAMPLES = [
    ("繁", "香港如何推動新型工業化？"),
    ("简", "什么是新质生产力？"),
    ("EN", "How is Hong Kong promoting new industrialisation?"),
]
THINKING = "<span class='thinking'>正在查找來源… Searching the sources…</span>"

HEADER = """
<div class="app-header">
  <div class="app-title">港聞引證問答 <span class="app-title-en">HK Press Q&amp;A</span></div>
  <div class="app-sub">以繁體、简体或 English 提問；每個答案都引用原文段落。
  <span class="app-sub-en">Every answer cites the exact source paragraphs.</span></div>
</div>
"""


def _pieces(text: str) -> Iterator[str]:
    from rag.answer import stream_pieces

    yield from stream_pieces(text)


class ChatUI:
    """Event handlers over one ServiceHolder; the state is per browser session."""

    def __init__(self, holder: Any, stream_delay_s: float = STREAM_DELAY_S) -> None:
        self.holder = holder
        self.stream_delay_s = stream_delay_s

    @staticmethod
    def new_state() -> dict[str, Any]:
        return {"turns": [], "last": None, "turn": 0}

    def _ask(self, question: str, k: int, history: list[dict[str, str]], script: str) -> dict[str, Any]:
        return self.holder.get().ask(question, int(k), history=history, script=script).to_dict()

    def respond(self, question: str, chat: list[dict[str, Any]] | None, state: dict[str, Any] | None,
                script: str, k: int) -> Iterator[tuple[Any, ...]]:
        """Stream one answer: the question, a placeholder, then the answer piece by piece."""
        state = state or self.new_state()
        chat = list(chat or [])
        question = (question or "").strip()
        if not question:
            yield "", chat, gr.skip(), state
            return
        turn = state["turn"] + 1
        chat += [{"role": "user", "content": escape_md(question)}, {"role": "assistant", "content": THINKING}]
        yield "", chat, gr.skip(), state
        history = state["turns"][-2 * MAX_TURNS :]
        try:
            answer = self._ask(question, k, history, script)
        except RagError as exc:
            chat[-1] = {"role": "assistant", "content": f"⚠️ {escape_md(str(exc))}"}
            yield "", chat, gr.skip(), state
            return
        except Exception:
            log.exception("the chat failed to answer")
            chat[-1] = {"role": "assistant", "content": "⚠️ 內部錯誤 Internal error; the server log has the details."}
            yield "", chat, gr.skip(), state
            return
        n = len(answer["citations"])
        sources = render_sources(answer, turn)
        shown = ""
        for piece in _pieces(answer["answer"]):
            shown += piece
            chat[-1] = {"role": "assistant", "content": render_answer(shown, n, turn, abstained=answer["abstained"])}
            yield "", chat, sources, state
            if self.stream_delay_s:
                time.sleep(self.stream_delay_s)
        chat[-1] = {"role": "assistant", "content": render_answer(answer["answer"], n, turn, abstained=answer["abstained"])}
        state = {
            "turns": [*history, {"role": "user", "content": question}, {"role": "assistant", "content": answer["answer"]}],
            "last": {"question": question, "history": history},
            "turn": turn,
        }
        yield "", chat, sources, state

    def rescript(self, chat: list[dict[str, Any]] | None, state: dict[str, Any] | None, script: str,
                 k: int) -> tuple[Any, ...]:
        """Show the last answer and its sources again in the newly chosen script."""
        if not state or not state.get("last") or not chat:
            return gr.skip(), gr.skip(), state
        last = state["last"]
        try:
            answer = self._ask(last["question"], k, last["history"], script)
        except RagError as exc:
            gr.Warning(str(exc))
            return gr.skip(), gr.skip(), state
        turn = state["turn"]
        chat = list(chat)
        chat[-1] = {"role": "assistant",
                    "content": render_answer(answer["answer"], len(answer["citations"]), turn, abstained=answer["abstained"])}
        turns = list(state["turns"])
        if turns:
            turns[-1] = {"role": "assistant", "content": answer["answer"]}
        return chat, render_sources(answer, turn), {**state, "turns": turns}

    def clear(self) -> tuple[Any, ...]:
        return [], EMPTY_SOURCES, self.new_state()

    def status(self) -> str:
        try:
            info = self.holder.info()
        except RagError:
            return f"⚠️ {escape_md(self.holder.not_ready_reason())}"
        model = info.get("model", {}).get("id") or info.get("model", {}).get("name") or "?"
        return (f"索引 Index: {info.get('documents')} 篇文件 documents · {info.get('paragraphs')} 段 paragraphs"
                f" · model `{escape_md(str(model))}` · [API docs](/docs)")


def build_blocks(holder: Any, *, stream_delay_s: float = STREAM_DELAY_S) -> gr.Blocks:
    ui = ChatUI(holder, stream_delay_s)
    with gr.Blocks(title="港聞引證問答 · HK Press Q&A", analytics_enabled=False) as demo:
        state = gr.State(ui.new_state())
        gr.HTML(HEADER, elem_id="app-header", padding=False)
        with gr.Row(equal_height=False, elem_id="main-row"):
            with gr.Column(scale=3, min_width=340, elem_id="chat-col"):
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
                with gr.Row(elem_id="examples"):
                    gr.HTML("<span class='examples-label'>試試問 Try:</span>", padding=False, container=False)
                    example_buttons = [
                        (gr.Button(f"{tag} · {q}", size="sm", elem_classes=["example-q"]), q) for tag, q in EXAMPLES
                    ]
                script = gr.Radio(SCRIPT_CHOICES, value="original", label="顯示文字 Script", elem_id="script")
                with gr.Accordion("進階 Advanced", open=False, elem_id="advanced"):
                    k = gr.Slider(1, 10, value=5, step=1, label="最多引用段落 Max paragraphs (k)", elem_id="k")
            with gr.Column(scale=2, min_width=320, elem_id="src-col"):
                sources = gr.HTML(EMPTY_SOURCES, elem_id="sources", padding=False)
        status = gr.Markdown(elem_id="status")

        ask_io = {"fn": ui.respond, "inputs": [box, chatbot, state, script, k],
                  "outputs": [box, chatbot, sources, state], "show_progress": "hidden"}
        box.submit(**ask_io)
        send.click(**ask_io)
        for button, question in example_buttons:
            button.click(lambda q=question: q, None, box, queue=False).then(**ask_io)
        script.change(ui.rescript, [chatbot, state, script, k], [chatbot, sources, state], show_progress="hidden")
        chatbot.clear(ui.clear, None, [chatbot, sources, state], queue=False)
        demo.load(ui.status, None, status)
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


def mount_ui(app: FastAPI, holder: Any, settings: Settings, *, stream_delay_s: float = STREAM_DELAY_S) -> FastAPI:
    """Mount the chat at ``/``; routes registered on ``app`` before this keep precedence."""
    demo = build_blocks(holder, stream_delay_s=stream_delay_s)
    js = (HERE / "chat.js").read_text(encoding="utf-8")
    auth = None
    if settings.api_keys:
        from rag.api.auth import key_matches, parse_keys

        keys = parse_keys(settings.api_keys)

        def auth(username: str, password: str) -> bool:  # any user name, an API key as password
            return key_matches(password, keys)

    return gr.mount_gradio_app(
        app, demo, path="/", theme=_theme(), css_paths=[HERE / "chat.css"],
        head=f"<script>{js}</script>", footer_links=[], run_history=False,
        auth=auth, auth_message="Log in with any user name and an API key (RAG_API_KEYS) as the password.",
        show_error=False, ssr_mode=False, mcp_server=False,
    )
