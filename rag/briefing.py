"""Briefings: questions, their cited answers and numbered references, as .docx or Markdown.

A briefing is built from citation data, never from rendered HTML: each reference is looked up
by its ``para_id`` in the loaded index, so its title, date, source and paragraph text are the
index's own, shown in the chosen display script. Items come either from questions (asked
here) or from answers already given (the chat's "add to briefing", ``POST /api/briefing``
with ``answers``), whose citations must name paragraphs of the index.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from rag.errors import InputError, NotFoundError
from rag.service import clean_question
from rag.text.normalise import convert_script
from rag.text.script import script_config
from rag.text.sentences import MARKER

MAX_ITEMS = 50
FORMATS = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "md": "text/markdown; charset=utf-8",
}
SCRIPT_NAMES = {"original": "原文 original", "hant": "繁體 hant", "hans": "简体 hans", "hk": "香港 hk",
                "tw": "台灣 tw"}
# Labels are written in Traditional Chinese and converted with the answer (简体 in a hans briefing).
LABELS = {
    "title": "簡報 Briefing",
    "references": "參考資料 References",
    "no_references": "沒有引用來源 No references",
    "questions": "問題 questions",
    "script": "文字 script",
    "made": "製作 made",
}
# Characters XML 1.0 forbids (a .docx is XML); a question or answer sent to the API may hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_FONT_CJK = "Noto Sans CJK TC"


@dataclass(frozen=True)
class Reference:
    n: int
    para_id: str
    doc_id: str
    title: str
    date: str | None
    source: str
    text: str  # the whole paragraph, in the briefing's script


@dataclass(frozen=True)
class BriefingItem:
    question: str
    answer: str
    abstained: bool
    references: tuple[Reference, ...]
    note: str | None = None  # why there are no references (the abstention reason)


@dataclass(frozen=True)
class Briefing:
    items: tuple[BriefingItem, ...]
    script: str = "original"
    title: str | None = None
    made: datetime | None = None


# -- building ---------------------------------------------------------------------------------


def reference(service: Any, n: int, para_id: str, config: str | None) -> Reference:
    """Reference ``n`` to ``para_id`` from the index, in the display script ``config``."""
    para = service.paragraph(para_id)
    doc = service.document(para.doc_id)
    conv = (lambda t: convert_script(t, config)) if config else (lambda t: t)
    return Reference(n=n, para_id=para.para_id, doc_id=para.doc_id, title=conv(doc.title or doc.doc_id),
                     date=doc.date, source=doc.source or "", text=conv(para.text))


def _check_count(what: str, n: int) -> None:
    if n == 0:
        raise InputError(f"a briefing needs at least one {what[:-1]}")
    if n > MAX_ITEMS:
        raise InputError(f"a briefing takes at most {MAX_ITEMS} {what}; got {n}")


def from_questions(service: Any, questions: Sequence[str], *, script: str = "original", k: int = 5) -> Briefing:
    """Ask each question (no shared history: each stands alone in a briefing)."""
    config = script_config(script)
    _check_count("questions", len(questions))
    items = []
    for q in questions:
        q = clean_question(q, service.settings)
        answer = service.ask(q, k, script=script)
        refs = tuple(reference(service, c.n, c.para_id, config) for c in answer.citations)
        question = convert_script(q.strip(), config) if config else q.strip()
        items.append(BriefingItem(question, answer.answer, answer.abstained, refs, answer.abstain_reason))
    return Briefing(tuple(items), script)


def from_answers(service: Any, answers: Sequence[Mapping[str, Any]], *, script: str = "original",
                 service_of: Callable[[Mapping[str, Any]], Any] | None = None) -> Briefing:
    """Items from answers already given: ``{"question", "answer", "citations": [{"n", "para_id"}]}``.

    The answer text is converted to ``script``; every citation must name a paragraph of the
    loaded index (the reference is rebuilt from it, whatever text the caller sent).
    ``service_of(answer)``: the service of that answer's index, for answers from several
    collections (the chat's briefing); unset, ``service`` for every answer."""
    config = script_config(script)
    _check_count("answers", len(answers))
    items = []
    for i, a in enumerate(answers):
        refs = []
        index = service if service_of is None else service_of(a)
        for j, c in enumerate(a.get("citations") or ()):
            try:
                refs.append(reference(index, int(c["n"]), str(c["para_id"]), config))
            except NotFoundError as exc:
                raise InputError(f"answers[{i}].citations[{j}]: {exc}") from None
        text = str(a.get("answer") or "")
        question = str(a.get("question") or "").strip()
        items.append(BriefingItem(
            question=convert_script(question, config) if config else question,
            answer=convert_script(text, config) if config else text,
            abstained=bool(a.get("abstained")) or not refs,
            references=tuple(sorted(refs, key=lambda r: r.n)),
            note=a.get("abstain_reason"),
        ))
    return Briefing(tuple(items), script)


# -- rendering --------------------------------------------------------------------------------


def _label(key: str, script: str) -> str:
    config = script_config(script)
    return convert_script(LABELS[key], config) if config else LABELS[key]


def _made(b: Briefing) -> datetime:
    return b.made or datetime.now(UTC)


def file_name(b: Briefing, fmt: str) -> str:
    return f"briefing-{_made(b):%Y%m%d-%H%M%S}.{fmt}"


def meta_line(r: Reference) -> str:
    """``date · source · para_id`` of a reference (what is known of it)."""
    return " · ".join(x for x in (r.date, r.source, r.para_id) if x)


def _subtitle(b: Briefing) -> str:
    return (f"{_label('made', b.script)} {_made(b):%Y-%m-%d %H:%M} UTC · {len(b.items)} "
            f"{_label('questions', b.script)} · {_label('script', b.script)}: {SCRIPT_NAMES.get(b.script, b.script)}")


def _md_escape(text: str) -> str:
    """Corpus text shown literally: emphasis, code and HTML characters escaped, and a line
    start that would make a heading, quote or list. Intraword ``_`` and ``#`` stay readable."""
    text = re.sub(r"([\\`*<>])", r"\\\1", text)
    return re.sub(r"(?m)^(\s*)([#>+\-]|\d+\.)", r"\1\\\2", text)


def to_markdown(b: Briefing) -> str:
    lines = [f"# {_md_escape(b.title or _label('title', b.script))}", "", f"_{_subtitle(b)}_", ""]
    for i, item in enumerate(b.items, 1):
        lines += [f"## {i}. {_md_escape(item.question)}", "", _md_escape(item.answer), ""]
        if not item.references:
            note = f": {item.note}" if item.note else ""
            lines += [f"_{_label('no_references', b.script)}{_md_escape(note)}_", ""]
            continue
        lines += [f"**{_label('references', b.script)}**", ""]
        for r in item.references:
            meta = " · ".join(x for x in (r.date, _md_escape(r.source), f"`{r.para_id}`") if x)
            lines.append(f"{r.n}. **{_md_escape(r.title)}** — {meta}")
            lines += [f"   > {_md_escape(t)}" if t.strip() else "   >" for t in r.text.split("\n")]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _set_font(style: Any, size: float | None = None, *, color: tuple[int, int, int] | None = None) -> None:
    from docx.oxml.ns import qn
    from docx.shared import Pt, RGBColor

    style.font.name = "Noto Sans"
    rpr = style.element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = rpr.makeelement(qn("w:rFonts"), {})
        rpr.append(fonts)
    fonts.set(qn("w:eastAsia"), _FONT_CJK)
    if size:
        style.font.size = Pt(size)
    if color:
        style.font.color.rgb = RGBColor(*color)


def _answer_runs(paragraph: Any, text: str) -> None:
    """The answer with its ``[n]`` markers as small raised numbers, as footnote marks read."""
    pos = 0
    for m in MARKER.finditer(text):
        if m.start() > pos:
            paragraph.add_run(text[pos : m.start()].rstrip(" "))
        mark = paragraph.add_run(f"[{m.group(1)}]")
        mark.font.superscript = True
        pos = m.end()
    if pos < len(text):
        paragraph.add_run(text[pos:])


def _xml_safe(b: Briefing) -> Briefing:
    def clean(t: str | None) -> Any:
        return _NOT_XML.sub(" ", t) if t else t

    items = tuple(replace(
        item, question=clean(item.question), answer=clean(item.answer), note=clean(item.note),
        references=tuple(replace(r, title=clean(r.title), source=clean(r.source), text=clean(r.text),
                                 para_id=clean(r.para_id), date=clean(r.date)) for r in item.references),
    ) for item in b.items)
    return replace(b, items=items, title=clean(b.title))


def to_docx(b: Briefing) -> bytes:
    import docx
    from docx.enum.text import WD_LINE_SPACING
    from docx.shared import Cm, Pt, RGBColor

    b = _xml_safe(b)
    doc = docx.Document()
    section = doc.sections[0]
    section.page_height, section.page_width = Cm(29.7), Cm(21.0)  # A4
    for side in ("left_margin", "right_margin"):
        setattr(section, side, Cm(2.2))
    section.top_margin = section.bottom_margin = Cm(2.0)
    styles = doc.styles
    _set_font(styles["Normal"], 10.5)
    styles["Normal"].paragraph_format.line_spacing_rule = WD_LINE_SPACING.MULTIPLE
    styles["Normal"].paragraph_format.line_spacing = 1.3
    styles["Normal"].paragraph_format.space_after = Pt(4)
    for name, size in (("Title", 20), ("Heading 1", 14), ("Heading 2", 11)):
        _set_font(styles[name], size, color=(0x0F, 0x4C, 0x5C))
    doc.core_properties.title = b.title or _label("title", b.script)

    doc.add_heading(b.title or _label("title", b.script), level=0)
    sub = doc.add_paragraph()
    run = sub.add_run(_subtitle(b))
    run.italic = True
    run.font.size = Pt(9)
    for i, item in enumerate(b.items, 1):
        doc.add_heading(f"{i}. {item.question}", level=1)
        _answer_runs(doc.add_paragraph(), item.answer)
        if not item.references:
            p = doc.add_paragraph()
            r = p.add_run(_label("no_references", b.script) + (f": {item.note}" if item.note else ""))
            r.italic = True
            r.font.size = Pt(9)
            continue
        doc.add_heading(_label("references", b.script), level=2)
        for ref in item.references:
            head = doc.add_paragraph()
            head.paragraph_format.space_before = Pt(4)
            head.paragraph_format.space_after = Pt(0)
            head.paragraph_format.keep_with_next = True
            head.add_run(f"[{ref.n}] ").bold = True
            head.add_run(ref.title).bold = True
            meta = doc.add_paragraph()
            meta.paragraph_format.space_after = Pt(2)
            meta.paragraph_format.keep_with_next = True
            m = meta.add_run(meta_line(ref))
            m.font.size = Pt(8.5)
            m.font.color.rgb = RGBColor(0x55, 0x5F, 0x6B)
            quote = doc.add_paragraph(ref.text)
            quote.paragraph_format.left_indent = Cm(0.6)
            quote.paragraph_format.space_after = Pt(6)
            for r in quote.runs:
                r.font.size = Pt(10)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def render(b: Briefing, fmt: str) -> bytes:
    """The briefing as file bytes in ``fmt`` (``docx`` or ``md``)."""
    if fmt == "docx":
        return to_docx(b)
    if fmt == "md":
        return to_markdown(b).encode("utf-8")
    raise InputError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")


def read_questions(lines: Iterable[str]) -> list[str]:
    """Questions from a text file: one a line; blank lines and ``#`` comments are skipped."""
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
