"""HTML for the chat: answers with clickable ``[n]`` markers, source cards, copyable citations.

Every piece of document or user text goes through ``html.escape`` here; the only markup is
our own. Pure functions, so the escaping and the citation text are unit-tested.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from rag.text.sentences import MARKER, split_sentences

# A marker with the spaces before it: "… matter [1]." reads "… matter." without it.
_SPACED_MARKER = re.compile(rf"\s*{MARKER.pattern}")
# Markdown punctuation that could restyle corpus text in the chat bubble (not & or ;: entities).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}~|])")

SCRIPT_CHOICES = [("原文 Original", "original"), ("繁體", "hant"), ("简体", "hans"), ("香港", "hk"), ("台灣", "tw")]

NO_SOURCE_TITLE = "找不到可引用的來源 · No source found"


def escape_md(text: str) -> str:
    """Text shown literally inside the Markdown chat bubble: HTML-escaped, Markdown-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def render_answer(text: str, n_citations: int, turn: int, *, abstained: bool = False,
                  warnings: Sequence[str] = (), reason: str | None = None, actions: bool = False,
                  mode: str = "extractive") -> str:
    """The answer as chat Markdown; each ``[n]`` (1..n_citations) becomes a link to card n.

    ``warnings`` (citation checks, generator fallbacks) are listed under the answer;
    ``reason`` says why nothing was cited; ``actions`` adds the "add to briefing" link; ``mode``
    "generated" marks an answer the language model wrote (checked against its sources)."""
    out: list[str] = []
    pos = 0
    for m in MARKER.finditer(text):
        n = int(m.group(1))
        if not 1 <= n <= n_citations:
            continue
        out.append(escape_md(text[pos : m.start()]))
        out.append(f'<a class="cite" href="#src-{turn}-{n}" data-turn="{turn}" data-n="{n}" '
                   f'title="來源 source {n}">[{n}]</a>')
        pos = m.end()
    out.append(escape_md(text[pos:]))
    body = "".join(out)
    # What follows the answer goes in HTML blocks (after a blank line), so Markdown leaves the
    # text inside alone: it is HTML-escaped only.
    if abstained:
        why = f'<br><span class="abstain-reason">{html.escape(reason)}</span>' if reason else ""
        body = (f'<div class="no-source-msg"><strong>{html.escape(NO_SOURCE_TITLE)}</strong><br>'
                f"{html.escape(MARKER.sub('', text))}{why}</div>")
    blocks = [body]
    if mode == "generated" and not abstained:
        blocks.append('<div class="answer-mode" title="每句已核對其來源 every sentence checked against its source">'
                      "✍ 語言模型撰寫 written by the language model</div>")
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        blocks.append(f'<div class="answer-warn" role="note"><strong>⚠️ 注意 Check:</strong><ul>{items}</ul></div>')
    if actions:
        blocks.append(f'<div class="answer-actions"><a class="add-brief" href="#brief-add-{turn}" '
                      f'role="button" title="加入簡報 Add to briefing">＋ 加入簡報 Add to briefing</a></div>')
    return "\n\n".join(blocks)


def render_writing(draft: Mapping[str, Any], turn: int, written: str, pending: str) -> str:
    """The bubble while the language model writes: its checked sentences so far, the sentence it
    is writing greyed (not yet checked), and the extractive answer (``draft``, whose ``[n]`` link
    to the source cards shown) under it. The written text's markers are left out until the
    answer is complete and its sources are numbered."""
    text = html.escape(MARKER.sub("", written))
    now = html.escape(MARKER.sub("", pending))
    blocks = [
        f'<div class="writing">{text}<span class="pending" title="尚未核對 not yet checked">{now}</span>'
        '<span class="cursor">▍</span></div>',
        '<div class="answer-mode">✍ 語言模型撰寫中：每句核對來源後顯示，灰字尚未核對 · the language model is writing; '
        "each sentence is checked against its source (grey: not yet checked)</div>",
        '<div class="draft-label">來源摘錄 Quoted from the sources:</div>',
        render_answer(draft["answer"], len(draft["citations"]), turn, warnings=draft.get("warnings") or ()),
    ]
    return "\n\n".join(blocks)


def render_briefing(items: Sequence[Mapping[str, Any]]) -> str:
    """The briefing panel: numbered items with move up / move down / remove controls."""
    if not items:
        return ('<div class="brief-empty">按答案下的「＋ 加入簡報」收集答案，再匯出 .docx 或 .md。'
                "<br>Use “＋ Add to briefing” under an answer, then export .docx or .md.</div>")
    rows = []
    last = len(items) - 1
    for i, item in enumerate(items):
        refs = len(item.get("citations") or ())
        ref_note = f"{refs} 項來源 references" if refs else "沒有來源 no references"

        def ctl(act: str, label: str, title: str, *, off: bool = False, i: int = i) -> str:
            dis = ' aria-disabled="true"' if off else ""
            return (f'<a class="brief-ctl brief-{act}" href="#brief-{act}-{i}" role="button" '
                    f'title="{title}"{dis}>{label}</a>')

        rows.append(
            f'<li class="brief-item" data-i="{i}"><span class="brief-n">{i + 1}</span>'
            f'<span class="brief-q">{html.escape(item.get("question", ""))}'
            f'<span class="brief-refs">{ref_note}</span></span><span class="brief-ctls">'
            f'{ctl("up", "↑", "上移 Move up", off=i == 0)}{ctl("down", "↓", "下移 Move down", off=i == last)}'
            f'{ctl("remove", "✕", "移除 Remove")}</span></li>'
        )
    return f'<ol class="brief-list">{"".join(rows)}</ol>'


def highlight(text: str, spans: Iterable[Sequence[int]]) -> str:
    """``text`` escaped, with the [start, end) ``spans`` wrapped in ``<mark>`` (overlaps merged)."""
    merged: list[list[int]] = []
    for s in sorted((max(0, int(a)), min(len(text), int(b))) for a, b in spans):
        if s[0] >= s[1]:
            continue
        if merged and s[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], s[1])
        else:
            merged.append([s[0], s[1]])
    out, pos = [], 0
    for a, b in merged:
        out.append(html.escape(text[pos:a]))
        out.append(f"<mark>{html.escape(text[a:b])}</mark>")
        pos = b
    out.append(html.escape(text[pos:]))
    return "".join(out)


def answer_sentence(answer: str, n: int) -> str:
    """The answer sentence(s) that cite ``[n]``, without markers (the whole answer if none do)."""
    tag = f"[{n}]"
    # The one splitter keeps the markers after a sentence's end with that sentence.
    picked = [answer[a:b] for a, b in split_sentences(answer) if tag in answer[a:b]]
    text = " ".join(_SPACED_MARKER.sub("", s).strip() for s in picked) if picked else _SPACED_MARKER.sub("", answer)
    return re.sub(r"\s+", " ", text).strip()


def citation_text(answer: str, c: Mapping[str, Any]) -> str:
    """A briefing-ready citation: answer sentence, the paragraph, title, date, source, para_id."""
    meta = "，".join(x for x in (f"《{c.get('title') or c['doc_id']}》", c.get("date") or "", c.get("source") or "") if x)
    lines = [answer_sentence(answer, int(c["n"])), f"「{c['text']}」", f"——{meta}（para_id: {c['para_id']}）"]
    return "\n".join(line for line in lines if line)


def _source_link(source: str) -> str:
    """A link only for http(s) URLs (never javascript: or file paths); the host as its text."""
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return (f'<a class="src-link" href="{html.escape(source, quote=True)}" target="_blank" '
                f'rel="noopener noreferrer">{html.escape(parsed.netloc)} ↗</a>')
    return f'<span class="src-path">{html.escape(source)}</span>' if source else ""


def render_card(answer: str, c: Mapping[str, Any], turn: int, *, open_: bool = False,
                flags: Sequence[str] = ()) -> str:
    n = int(c["n"])
    date = f'<span class="src-date">{html.escape(c["date"])}</span>' if c.get("date") else ""
    original = ""
    if c.get("original_text") and c["original_text"] != c["text"]:
        original = (f'<details class="src-orig"><summary>原文 Original</summary>'
                    f'<p>{html.escape(c["original_text"])}</p></details>')
    cite = html.escape(citation_text(answer, c), quote=True)
    return (
        f'<details class="src-card" id="src-{turn}-{n}" data-n="{n}"{" open" if open_ else ""}>'
        f'<summary><span class="src-n">{n}</span><span class="src-head">'
        f'<span class="src-title">{html.escape(c.get("title") or c["doc_id"])}</span>'
        f'<span class="src-meta">{date}{_source_link(c.get("source") or "")}</span></span></summary>'
        f'<div class="src-body"><p class="src-text">{highlight(c["text"], c.get("highlights") or ())}</p>'
        f"{original}"
        + "".join(f'<p class="src-flag" title="清理時的標記 flagged while cleaning">⚑ {html.escape(f)}</p>' for f in flags)
        + f'<div class="src-foot"><code class="src-id">{html.escape(c["para_id"])}</code>'
        f'<span class="src-score" title="relevance">{float(c.get("score") or 0):.2f}</span>'
        + (f'<span class="src-judge" title="語言模型核對 P(答案) the language model\'s P(this answers)">'
           f'✓ {float(c["judge"]):.2f}</span>' if c.get("judge") is not None else "")
        + f'<button type="button" class="copy-cite" data-cite="{cite}">複製引用 Copy citation</button>'
        f"</div></div></details>"
    )


def render_sources(answer: Mapping[str, Any], turn: int, flags: Mapping[str, Sequence[str]] | None = None) -> str:
    """The source panel for one answer: numbered cards, or the visible "no source" state.

    ``flags`` maps a doc_id to what cleaning flagged in that document (shown on its cards)."""
    citations = answer.get("citations") or []
    if answer.get("abstained") or not citations:
        reason = answer.get("abstain_reason")
        return (
            '<div class="no-source" role="status">'
            '<div class="ns-icon" aria-hidden="true">∅</div>'
            f'<div class="ns-title">{html.escape(NO_SOURCE_TITLE)}</div>'
            "<p>語料中沒有足夠相關的段落可以回答這個問題。試試換個說法，或改用其他語言提問。</p>"
            "<p>No paragraph in the corpus is relevant enough to answer this. Try rephrasing.</p>"
            + (f'<p class="ns-reason">{html.escape(reason)}</p>' if reason else "")
            + "</div>"
        )
    flags = flags or {}
    cards = "".join(render_card(answer.get("answer", ""), c, turn, open_=(i == 0), flags=flags.get(c["doc_id"], ()))
                    for i, c in enumerate(citations))
    return (f'<div class="src-list" data-turn="{turn}"><div class="src-heading">來源 Sources '
            f'<span class="src-count">{len(citations)}</span></div>{cards}</div>')


EMPTY_SOURCES = (
    '<div class="src-empty"><div class="ns-icon" aria-hidden="true">¶</div>'
    "<p>答案引用的原文段落會顯示在這裏。點擊答案中的 [1]、[2] 可打開對應來源。</p>"
    "<p>The paragraphs an answer cites appear here; click a [n] marker to open one.</p></div>"
)
