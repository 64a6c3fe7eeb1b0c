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


# -- the documents page ------------------------------------------------------------------------

# What a job is doing (rag.uploads.Job.stage, and the builder's own stages), bilingual.
JOB_STAGES = {
    "queued": "排隊中 Queued", "storing": "儲存檔案 Storing the files", "reading": "讀取檔案 Reading the files",
    "read": "讀取檔案 Reading the files", "encoding": "編碼段落 Encoding the paragraphs",
    "writing": "寫入索引 Writing the index", "swapped": "開啟新索引 Opening the new index",
    "opening": "開啟新索引 Opening the new index", "done": "完成 Done", "failed": "失敗 Failed",
}
# Where each stage starts on the bar (reading fills 2-10, encoding 10-90).
_STAGE_AT = {"queued": 0, "storing": 2, "reading": 2, "read": 10, "encoding": 10, "writing": 92, "swapped": 96,
             "opening": 98, "done": 100}


def job_percent(job: Mapping[str, Any]) -> int:
    """How far a job is, 0-100, from its stage and counts (files read, paragraphs encoded)."""
    stage, p = job.get("stage") or "queued", job.get("progress") or {}
    if job.get("status") == "done":
        return 100
    at = _STAGE_AT.get(stage, 0)
    if stage in ("storing", "reading") and p.get("files_total"):
        return at + int(8 * min(1.0, p.get("files_read", 0) / p["files_total"]))
    if stage == "encoding" and p.get("to_encode"):
        return at + int(80 * min(1.0, p.get("encoded", 0) / p["to_encode"]))
    return at


def render_message(text: str, kind: str = "error") -> str:
    """A message box on the documents page: ``error``, ``ok`` or ``info``; the text escaped."""
    icon = {"error": "⚠️", "ok": "✓", "info": "ℹ"}.get(kind, "")
    return f'<div class="docs-msg docs-msg-{kind}" role="{"alert" if kind == "error" else "status"}">{icon} {html.escape(text, quote=False)}</div>'


def render_job(job: Mapping[str, Any]) -> str:
    """A job as a progress bar with its stage and counts; when finished, what it did or why it failed."""
    status = str(job.get("status") or "queued")
    stage = str(job.get("stage") or status)
    p = job.get("progress") or {}
    files = [str(f.get("name", "")) for f in job.get("files") or ()]
    what = "上載 Upload" if job.get("kind") == "upload" else "刪除 Delete"
    pct = job_percent(job)
    counts = []
    if job.get("kind") == "upload":
        counts.append(f"已讀檔案 Files read {p.get('files_read', 0)}/{p.get('files_total', len(files))}")
    if p.get("to_encode"):
        counts.append(f"已編碼段落 Paragraphs encoded {p.get('encoded', 0)}/{p['to_encode']}")
    elif job.get("kind") == "upload" and _STAGE_AT.get(stage, 0) > _STAGE_AT["encoding"]:
        counts.append("段落向量取自快取 Paragraph vectors reused from the cache")
    if p.get("paragraphs") and status != "done":  # (when done, the result says it)
        counts.append(f"集合共 {p['paragraphs']} 段 paragraphs in the collection")
    out = [f'<div class="job job-{html.escape(status)}" data-status="{html.escape(status)}" '
           f'data-stage="{html.escape(stage)}" data-percent="{pct}">',
           f'<div class="job-head"><span class="job-what">{what} · {html.escape(", ".join(files))}</span>'
           f'<span class="job-stage">{html.escape(JOB_STAGES.get(stage, stage))}</span></div>',
           f'<progress class="job-bar" max="100" value="{pct}" aria-label="{what}">{pct}%</progress>',
           f'<div class="job-counts">{html.escape(" · ".join(counts))}</div>']
    if status == "done":
        r = job.get("result") or {}
        done = [f"{label} {', '.join(map(str, r[key]))}" for key, label in
                (("new", "新增 Added:"), ("changed", "更新 Replaced:"), ("deleted", "刪除 Removed:")) if r.get(key)]
        done.append(f"集合現有 {r.get('documents', 0)} 篇文件 documents、{r.get('paragraphs', 0)} 段 paragraphs")
        out.append(f'<div class="job-result">{html.escape(" · ".join(done))}</div>')
        for s in r.get("skipped") or ():
            out.append(f'<div class="job-skipped">⚠️ 略過 Skipped {html.escape(str(s.get("file")))}: '
                       f'{html.escape(str(s.get("reason")))}</div>')
    elif status == "failed":
        out.append(f'<div class="job-error" role="alert">⚠️ {html.escape(str(job.get("error") or ""))}<br>'
                   "集合沒有改變 The collection is as it was before.</div>")
    out.append("</div>")
    return "".join(out)


def _doc_button(act: str, doc_id: str, label: str, title: str) -> str:
    return (f'<button type="button" class="doc-btn doc-{act}" data-act="{act}" data-doc="{html.escape(doc_id, quote=True)}" '
            f'title="{title}">{label}</button>')


def render_documents(collection: str, docs: Sequence[Mapping[str, Any]], *, can_delete: bool = False,
                     pending: Mapping[str, Any] | None = None) -> str:
    """A collection's documents: title, doc_id, file, paragraph count, what cleaning flagged or
    removed; a "view" button each, a "delete" button where ``can_delete``. ``pending``
    (``{"doc_id", "file", "doc_ids"}``) asks to confirm that delete in its row."""
    paragraphs = sum(int(d.get("paragraphs") or 0) for d in docs)
    head = (f'<div class="docs-heading"><span class="docs-name">{html.escape(collection)}</span>'
            f'<span class="docs-count">{len(docs)} 篇文件 documents · {paragraphs} 段 paragraphs</span></div>')
    if not docs:
        return (f'<div class="docs-list" data-collection="{html.escape(collection, quote=True)}">{head}'
                '<div class="docs-empty">這個集合還沒有文件。 No documents in this collection yet.</div></div>')
    rows = []
    for d in docs:
        doc_id = str(d["doc_id"])
        flags = [str(f) for f in d.get("flags") or ()]
        removed = int(d.get("removed") or 0)
        notes = "".join(f'<span class="doc-flag" title="清理時的標記 flagged while cleaning">⚑ {html.escape(f)}</span>'
                        for f in flags)
        if removed:
            notes += (f'<span class="doc-removed" title="清理時移除的雜訊 boilerplate removed while cleaning">'
                      f"✂ 清理移除 {removed} 項 removed while cleaning</span>")
        if not notes:
            notes = '<span class="doc-clean">✓ 無清理標記 No cleaning flags</span>'
        meta = " · ".join(html.escape(str(x)) for x in (d.get("file"), d.get("date")) if x)
        actions = _doc_button("view", doc_id, "查看段落 View paragraphs", "查看索引中的段落 The paragraphs as indexed")
        confirm = ""
        if can_delete:
            actions += _doc_button("delete", doc_id, "刪除 Delete", "刪除這份文件 Delete this document")
        if pending is not None and pending.get("doc_id") == doc_id:
            also = [x for x in pending.get("doc_ids") or () if x != doc_id]
            with_ = f"（連同 with {', '.join(also)}）" if also else ""
            confirm = (f'<div class="doc-ask" role="alertdialog"><span>確定刪除檔案 Delete the file '
                       f'<code>{html.escape(str(pending.get("file")))}</code>{html.escape(with_)}? '
                       "索引會更新，無法復原。 The index is updated without it; this cannot be undone.</span>"
                       + _doc_button("confirm", doc_id, "確認刪除 Yes, delete", "確認刪除 Delete it")
                       + _doc_button("cancel", doc_id, "取消 Cancel", "保留 Keep it") + "</div>")
        rows.append(
            f'<li class="doc-row{" doc-pending" if confirm else ""}" data-doc="{html.escape(doc_id, quote=True)}">'
            f'<div class="doc-main"><span class="doc-title">{html.escape(str(d.get("title") or doc_id))}</span>'
            f'<span class="doc-meta"><code class="doc-id">{html.escape(doc_id)}</code>{" · " + meta if meta else ""}</span></div>'
            f'<div class="doc-stats"><span class="doc-paras">{int(d.get("paragraphs") or 0)} 段 paragraphs</span>{notes}</div>'
            f'<div class="doc-actions">{actions}</div>{confirm}</li>'
        )
    return (f'<div class="docs-list" data-collection="{html.escape(collection, quote=True)}">{head}'
            f'<ul class="doc-rows">{"".join(rows)}</ul></div>')


def render_document(detail: Mapping[str, Any]) -> str:
    """One document's paragraphs as indexed (``para_id``, heading, text), with what cleaning
    flagged and removed."""
    doc_id = str(detail["doc_id"])
    meta = [f'<code class="doc-id">{html.escape(doc_id)}</code>']
    meta += [html.escape(str(x)) for x in (detail.get("path"), detail.get("date")) if x]
    link = _source_link(str(detail.get("source") or ""))
    if link and detail.get("source") != detail.get("path"):
        meta.append(link)
    parts = [f'<div class="doc-view" data-doc="{html.escape(doc_id, quote=True)}">',
             f'<div class="doc-view-head"><span class="doc-title">{html.escape(str(detail.get("title") or doc_id))}</span>'
             f'<span class="doc-meta">{" · ".join(meta)}</span></div>']
    parts += [f'<p class="src-flag">⚑ {html.escape(str(f))}</p>' for f in detail.get("flags") or ()]
    removed = detail.get("removed") or ()
    if removed:
        items = "".join(f'<li><span class="rm-kind">{html.escape(str(r.get("kind")))}</span> '
                        f'{html.escape(str(r.get("text")))}</li>' for r in removed)
        parts.append(f'<details class="doc-removed-list"><summary>清理時移除 {len(removed)} 項 Removed while cleaning'
                     f"</summary><ul>{items}</ul></details>")
    paras = detail.get("paragraphs") or ()
    parts.append(f'<div class="para-count">{len(paras)} 段 paragraphs, 如索引所存 as indexed</div><ol class="para-list">')
    for p in paras:
        parts.append(f'<li class="para"><code class="para-id">{html.escape(str(p["para_id"]))}</code>'
                     f'<p class="para-text">{html.escape(str(p["text"]))}</p></li>')
    parts.append("</ol></div>")
    return "".join(parts)


EMPTY_DOCUMENT = ('<div class="doc-view-empty">按「查看段落」看一份文件如何被切成段落。'
                  "<br>Use “View paragraphs” to see a document as it was indexed.</div>")
