"""Lines of a paragraph that label it rather than say something: headlines, captions, credits.

They stay in the paragraph (shown and cited as written) but are not quoted as answer
sentences: "香港推動新型工業化 [1]" repeats a headline, it does not answer. What counts, read
from the text itself (the paragraph and its document's title):

- ``headline``: a leading line of a paragraph with more lines after it that is short and has
  no sentence punctuation (the cleaner's own heading rule, :func:`is_heading`, which the cleaner uses too);
  consecutive leading headings ("話你知" / "香港工業發展") all count.
- ``title``: a line that repeats the document's title (compared in the matching form, without
  punctuation or spaces), wherever it stands and however it ends.
- ``caption``: a line that opens with a caption label (圖：, 图片：, 相片：, "Photo:",
  "(Photo: ...)"), marks where people stand in a picture (``(左)``, ``（右二）``, ``(中)``,
  "(left)", "(from left)"), or ends in a photo credit (below).
- ``credit``: a photo credit or source note: a short unpunctuated tail after the last
  sentence of a line ("圖片由主辦方提供", "科技園數據技術中心官網圖片", "中通社",
  "Photo: Reuters"), or a line that is one ("資料來源：統計處 ...").
"""

from __future__ import annotations

import re

from rag.text.sentences import SENTENCE_ENDS, matching_form, sentence_cuts

CREDIT_MAX_CHARS = 24  # a credit tail longer than this is a sentence that lacks its full stop

_CAPTION_LABEL = re.compile(
    r"^[(（\[【]?\s*(?:圖|图|圖片|图片|相片|照片|影像|Photos?|Pictures?|Pictured|Images?|Caption)\s*[:：]",
    re.IGNORECASE,
)
_CAPTION_LEAD = re.compile(r"^(?:圖為|图为|圖示|图示|上圖|上图|下圖|下图|左圖|左图|右圖|右图)")
_POSITION = re.compile(
    r"[(（](?:前排|後排|后排|前|後|后)?(?:左|右|中)(?:[一二三四五六七八九十\d]|起)?[)）]"
    r"|\((?:(?:from\s+)?(?:left|right)|cent(?:re|er)|middle|front|back)(?:\s+row)?\)",
    re.IGNORECASE,
)
_CREDIT = re.compile(
    r"(?:圖|图|照|相)片|供(?:圖|图)|[攝摄]$|(?:通訊|通讯|新華|新华|中通|中新|路透|美聯|美联|法新)社$"
    r"|^(?:photos?|pictures?|images?|credits?)\b|\b(?:photos?|images?)\s+(?:by|courtesy)\b|\bfile\s+photo\b",
    re.IGNORECASE,
)
# A source note line ("資料來源：統計處"): a credit, never a heading.
SOURCE_NOTE = re.compile(r"^(?:資料來源|资料来源|來源|来源|Sources?)\s*[:：]", re.IGNORECASE)
HEADING_MAX_CHARS = 60
BULLET = re.compile(r"^[-•·*▪●◦]\s*(?=\S)")
MD_HEADING = re.compile(r"^#{1,6}\s+(?=\S)")
_NOT_CONTENT = re.compile(r"[^\w\u3400-\u9fff]+")


def is_heading(s: str) -> bool:
    """A short line without sentence punctuation (and not a list item)."""
    if MD_HEADING.match(s):
        return True
    if not s or len(s) > HEADING_MAX_CHARS or BULLET.match(s):
        return False
    if any(c in SENTENCE_ENDS for c in s) or s[-1] in ",，、:：.":
        return False
    return any(c.isalnum() for c in s)


def _bare(text: str) -> str:
    return _NOT_CONTENT.sub("", matching_form(text))


def _ends(line: str) -> list[int]:
    """Where the sentences of one line end: any full stop before a space counts, as for chunking."""
    return sentence_cuts(line, english="space", markers=False)


def _credit_tail(line: str) -> bool:
    """Does ``line`` end in a credit: a short unpunctuated tail after its last sentence?"""
    ends = _ends(line)
    tail = line[ends[-1]:].strip() if ends else line.strip()
    return 0 < len(tail) <= CREDIT_MAX_CHARS and bool(_CREDIT.search(tail))


def _near_length(line: str, title: str) -> bool:
    """Could ``line`` be ``title`` give or take punctuation? (skips the script conversion)"""
    return abs(len(line) - len(title)) <= len(title) // 2 + 2


def _lines(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for piece in text.split("\n"):
        end = start + len(piece)
        a, b = start, end
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            spans.append((a, b))
        start = end + 1
    return spans


def label_lines(text: str, title: str = "") -> list[tuple[int, int, str]]:
    """``(start, end, kind)`` of the lines of ``text`` that are headlines, titles, captions or
    credits (kinds as in the module docstring), in order; the other lines are body text."""
    lines = _lines(text)
    bare_title = _bare(title) if title else ""
    out: list[tuple[int, int, str]] = []
    leading = True
    for i, (a, b) in enumerate(lines):
        line = text[a:b]
        kind = None
        if leading and i + 1 < len(lines) and is_heading(line) and not SOURCE_NOTE.match(line):
            kind = "headline"
        else:
            leading = False
        if kind is None and bare_title and _near_length(line, title) and _bare(line) == bare_title:
            kind = "title"
        elif kind is None and (_CAPTION_LABEL.match(line) or _CAPTION_LEAD.match(line) or _POSITION.search(line)):
            kind = "caption"
        elif kind is None and SOURCE_NOTE.match(line):
            kind = "credit"
        elif kind is None and _credit_tail(line):
            kind = "caption" if _ends(line) else "credit"
        if kind is not None:
            out.append((a, b, kind))
    return out
