"""Cleaning at ingestion: repair what scraping broke, drop boilerplate, find paragraphs.

The output is shown to users, so nothing here may drop real content; everything removed or
changed is recorded as a :class:`~rag.types.Removal` (with the raw line) for the audit report,
and what could not be repaired with certainty is reported in ``flags``.

Decisions (driven by the defects of the default corpus):

- Removed: tone-marked pinyin inserted after characters (``生產(chǎn)力`` -> ``生產力``), HTML
  tags/comments and entities, control characters, QR-code promos (``碼上看``, ``掃碼睇片`` ...)
  with the promoted title above them and a ``資料來源`` line right after them, barcode-like
  digit lines, comment/view counters (``評論:0``; the date on that line stays), "related
  articles" link lists after a navigation marker (``相關熱詞搜索`` ...) and repeated list items.
- Repaired: a garbled ``?!?/span>`` at the end of an open ``“`` quote becomes ``。”`` (the
  original closing quote and full stop); Latin-1/cp1252 and GBK mojibake where a strict round
  trip succeeds. Other mojibake runs stay in the text and are flagged.
- Kept: image captions (they carry facts), real parentheses such as ``(左)`` or ``(FLAIR)``,
  source notes (``資料來源：統計處 ...``, appended to the paragraph they belong to).
- Joined: a sentence broken across lines/blank lines (``超過130`` / ``條，...``) when the first
  part is body text without closing punctuation and the next part plainly continues it.
- Structure: a short line without sentence punctuation is a heading and is attached to the
  paragraph that follows (``heading + "\\n" + body``); consecutive headings are kept together.
  A run of ``-`` bullets is one paragraph (under its heading) while it stays short
  (<= ``LIST_GROUP_CHARS``), else each item is its own paragraph.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

from rag.text.headlines import BULLET, HEADING_MAX_CHARS, MD_HEADING, SOURCE_NOTE, is_heading
from rag.text.sentences import CLOSERS, ELLIPSIS, SENTENCE_ENDS
from rag.types import Removal

LIST_GROUP_CHARS = 600
MAX_PASSES = 4

SENT_END = SENTENCE_ENDS + ELLIPSIS  # cleaning, like chunking, counts an ellipsis as an end
_CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{_CJK_CLASS}]")

# --- line-level repairs -----------------------------------------------------------------------

_NEWLINES = re.compile(r"\r\n|[\r\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f\ufeff\u200b\ufffe\uffff]")
_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")

_TONE = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ"
_TONE_BASE = str.maketrans("āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ", "aaaaeeeeiiiioooouuuuüüüü")
# A parenthesised run of lowercase pinyin syllables with a tone mark (or ü), no spaces or digits,
# right after a CJK character: pinyin inserted by a "ruby" scraper. ``(FLAIR)``, ``(左)`` stay.
_PINYIN = re.compile(rf"(?<=[{_CJK_CLASS}])[(（]([a-zü{_TONE}\u0300-\u030c]{{1,20}})[)）]")
_SYLLABLES = re.compile(
    r"^(?:(?:zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?"
    r"(?:iang|iong|uang|ueng|ang|eng|ing|ong|ian|iao|uai|uan|üan|ai|ei|ao|ou|an|en|er|ia|ie|iu|in"
    r"|ua|uo|ui|un|üe|ün|a|o|e|i|u|ü))+$"
)

_HTML_TAGS = (
    "a|abbr|article|aside|b|big|blockquote|body|br|button|caption|center|cite|code|dd|div|dl|dt|"
    "em|figcaption|figure|font|footer|form|h[1-6]|head|header|hr|html|i|iframe|img|input|label|li|"
    "link|main|mark|meta|nav|noscript|o:p|ol|p|picture|pre|s|section|small|source|span|strike|"
    "strong|sub|sup|svg|table|tbody|td|tfoot|th|thead|title|tr|tt|u|ul|video|wbr"
)
_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_BR = re.compile(r"<br\s*/?>", re.I)
_TAG = re.compile(rf"</?(?:{_HTML_TAGS})\b(?:\s[^<>]*)?/?>", re.I)
# A closing tag whose "<" was swallowed by a broken multi-byte character: ``?!?/span>``.
_GARBLED_CLOSE = re.compile(rf"(\?[?!]*)?/(?:{_HTML_TAGS})>", re.I)
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")

_COUNTER_WORDS = "評論|评论|留言|閱讀|阅读|瀏覽|浏览|點擊|点击|點讚|点赞|收藏|轉發|转发"
_EMPTY_LABEL = re.compile(rf"(?:來源|来源|作者|編輯|编辑)\s*[:：]\s*(?=(?:{_COUNTER_WORDS})\s*[:：]\s*\d)")
_COUNTER = re.compile(rf"(?:{_COUNTER_WORDS})(?:數|数|量|次數|次数)?\s*[:：]\s*\d[\d,]*(?:\s*次)?")

# Latin-1/cp1252 read of UTF-8 (``Ã©``, ``â€œ``): a lead byte char followed by continuation chars.
_LATIN_MOJIBAKE = re.compile(
    "(?:[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6"
    "\u02dc\u2013\u2014\u2018\u2019\u201a\u201c\u201d\u201e\u2020\u2021\u2022\u2026\u2030"
    "\u2039\u203a\u20ac\u2122]{1,3})+"
)
# GBK read of UTF-8: these characters are rare in real text but frequent in that mojibake.
_GBK_MARKERS = "銆鈥锛鐨涓鍦浠骞鍏绗閫杩"
_GBK_MARKER = re.compile(f"[{_GBK_MARKERS}]")
_GBK_RUN_CHAR = re.compile(f"[{_CJK_CLASS}\u20ac]")
_ODD_CHARS = re.compile("[\ufffd\ue000-\uf8ff]+|[\u2500-\u257f]{3,}")
# A lost byte shows as "?" glued between CJK characters: ``原則?!钢欠奖恪...?10萬``.
_QMARK_RUN = re.compile(rf"(?<=[{_CJK_CLASS}])\?[!?]*(?:[{_CJK_CLASS}]{{1,20}}\?)?(?=[{_CJK_CLASS}\d])")

# --- line-level boilerplate -------------------------------------------------------------------

_PROMO = re.compile(
    r"^(?:碼上看|码上看|掃碼睇[文片]|扫码看[文片]|掃碼(?:閱讀|观看|觀看|關注|收看)|扫码(?:阅读|观看|关注|收看)"
    r"|長按(?:識別)?二維碼.{0,20}|长按(?:识别)?二维码.{0,20}|點擊(?:閱讀原文|關注).{0,20}"
    r"|点击(?:阅读原文|关注).{0,20}|Scan (?:the )?QR code.{0,40})$",
    re.I,
)
_QR_PROMO = re.compile(r"^(?:掃碼|扫码|Scan)", re.I)
_NAV_MARKER = re.compile(
    r"^(?:(?:相關|相关)(?:熱詞|热词|文章|新聞|新闻|閱讀|阅读|推薦|推荐|報道|报道|連結|链接)"
    r"|延伸閱讀|延伸阅读|推薦閱讀|推荐阅读|熱門文章|热门文章|Related (?:articles|posts|stories)"
    r"|Read more|You may also like)|(?:評論排行|评论排行)$",
    re.I,
)
_BARCODE = re.compile(r"^\d[\d ]*\d$")

# Starts that plainly continue the sentence above (a new paragraph never starts like this).
_CONT_PUNCT = "，、,。；;：:）)」』”%％"
_CONT_WORDS = "而並并及的之地得着著了過过等或則则且"
# Measure words/units: "超過130" / "條" is one phrase even when the first part looks short.
_UNITS = "條条個个間间家項项名位萬万億亿元年月日號号次倍人宗架艘部台臺所座棟栋幢層层公平米里分秒%％"


@dataclass(frozen=True)
class CleanParagraph:
    text: str  # heading line(s) first when there is a heading
    heading: str | None = None
    line: int | None = None  # 1-based raw line where it starts, when known


@dataclass(frozen=True)
class CleanResult:
    paragraphs: tuple[CleanParagraph, ...]
    removed: tuple[Removal, ...]
    flags: tuple[str, ...]

    @property
    def text(self) -> str:
        """The cleaned document: paragraphs separated by a blank line."""
        return "\n\n".join(p.text for p in self.paragraphs)

    @property
    def title(self) -> str | None:
        """The first heading, else the first line; None for an empty document."""
        if not self.paragraphs:
            return None
        first = self.paragraphs[0]
        return (first.heading or first.text).split("\n", 1)[0].strip() or None


@dataclass
class _Line:
    no: int | None
    text: str
    blank_before: bool = False
    dropped: str | None = None  # removal kind


class _Log:
    def __init__(self, keep_lines: bool) -> None:
        self.removed: list[Removal] = []
        self.flags: list[str] = []
        self.keep_lines = keep_lines

    def rm(self, kind: str, text: str, line: int | None) -> None:
        self.removed.append(Removal(kind, text, line if self.keep_lines else None))

    def flag(self, msg: str, line: int | None) -> None:
        where = f" (line {line})" if line is not None and self.keep_lines else ""
        self.flags.append(msg + where)


def clean_text(raw: str, *, mode: str = "plain") -> CleanResult:
    """Clean ``raw`` into paragraphs; never raises on any ``str``.

    ``mode``: ``plain`` (a line is a paragraph unless it plainly continues the one above),
    ``markdown`` (a blank-line block is a paragraph; ``#`` headings) or ``wrapped`` (hard-wrapped
    text such as PDF extraction: lines join until one ends a sentence).
    Idempotent: ``clean_text(r.text).text == r.text``.
    """
    if mode not in ("plain", "markdown", "wrapped"):
        raise ValueError(f"mode must be plain, markdown or wrapped, got {mode!r}")
    removed: list[Removal] = []
    flags: list[str] = []
    text = raw
    result: list[CleanParagraph] = []
    # Only plain text is re-cleaned to a fixpoint: markdown/wrapped structure is gone after a pass.
    for n in range(MAX_PASSES if mode == "plain" else 1):
        # Later passes only settle what the first pass's joins exposed; their line numbers
        # would point into intermediate text, so they are not recorded.
        log = _Log(keep_lines=n == 0)
        paras = _clean_once(text, mode, log)
        removed.extend(log.removed)
        flags.extend(f for f in log.flags if not any(g.startswith(f) for g in flags))
        new_text = "\n\n".join(p.text for p in paras)
        if n > 0:
            paras = [CleanParagraph(p.text, p.heading, result[i].line if i < len(result) else None)
                     for i, p in enumerate(paras)]
        result = paras
        if new_text == text:
            break
        text = new_text
    return CleanResult(tuple(result), tuple(removed), tuple(flags))


def clean_document(raw: str, *, mode: str = "plain") -> CleanResult:
    """What the loader calls: :func:`clean_text` (``result.title`` is the title guess)."""
    return clean_text(raw, mode=mode)


# --- pass ---------------------------------------------------------------------------------------


def _clean_once(raw: str, mode: str, log: _Log) -> list[CleanParagraph]:
    raw = _NEWLINES.sub("\n", raw)
    lines: list[_Line] = []
    for no, line in enumerate(raw.split("\n"), start=1):
        for part in repair_line(line, no, log):
            lines.append(_Line(no, part))
    _mark_boilerplate(lines, log)
    for ln in lines:
        if not ln.dropped:
            _flag_mojibake(ln.text, ln.no, log)
    units: list[_Line] = []
    blank = False
    for ln in lines:
        if ln.dropped:
            continue  # a removed line does not separate the text around it
        if not ln.text:
            blank = True
            continue
        units.append(_Line(ln.no, ln.text, blank_before=blank))
        blank = False
    units = _join_broken(units, mode, log)
    return _paragraphs(units, mode)


def repair_line(line: str, no: int | None = None, log: _Log | None = None) -> list[str]:
    """Line-level repairs (pinyin, HTML, entities, counters, mojibake); may split at ``<br>``."""
    log = log or _Log(keep_lines=False)
    if _CONTROL.search(line):
        log.rm("control", "".join(_CONTROL.findall(line)), no)
        line = _CONTROL.sub("", line)
    line = line.replace("\t", " ")
    for _ in range(20):  # to a fixpoint, so that cleaning is idempotent
        before = line
        line = _repair_html(line, no, log)
        line = _remove_pinyin(line, no, log)
        line = _sub_logged(_EMPTY_LABEL, "", line, "counter", no, log)
        line = _sub_logged(_COUNTER, "", line, "counter", no, log)
        line = _repair_mojibake(line, no, log)
        if line == before:
            break
    return [_SPACES.sub(" ", part).strip() for part in line.split("\n")]


def _sub_logged(rx: re.Pattern[str], repl: str, line: str, kind: str, no: int | None, log: _Log) -> str:
    found = rx.findall(line)
    if not found:
        return line
    for f in found:
        log.rm(kind, f, no)
    return rx.sub(repl, line)


def _is_pinyin(word: str) -> bool:
    """Lowercase pinyin syllables with at least one tone mark or ü (``chǎn``, ``lǜ``)."""
    word = unicodedata.normalize("NFC", word)
    if not any(c in _TONE or c == "ü" for c in word):
        return False
    return bool(_SYLLABLES.match(word.translate(_TONE_BASE)))


def _remove_pinyin(line: str, no: int | None, log: _Log) -> str:
    def sub(m: re.Match[str]) -> str:
        if not _is_pinyin(m.group(1)):
            return m.group()
        log.rm("pinyin", m.group(), no)
        return ""

    return _PINYIN.sub(sub, line)


def _repair_html(line: str, no: int | None, log: _Log) -> str:
    m: re.Match[str] | None  # each loop's match, and the garbled tag searched for again
    line = _sub_logged(_SCRIPT, "", line, "html", no, log)
    line = _sub_logged(_COMMENT, "", line, "html", no, log)
    for m in list(_BR.finditer(line)):
        log.rm("html", m.group(), no)
    line = _BR.sub("\n", line)
    line = _sub_logged(_TAG, "", line, "html", no, log)
    m = _GARBLED_CLOSE.search(line)
    while m:
        tail = line[m.end():].strip()
        open_quote = line.count("“", 0, m.start()) > line.count("”", 0, m.start())
        if m.group(1) and open_quote and not tail:
            repl = "。”"  # the closing quote and full stop whose bytes broke the "<"
            log.flag(f"repaired garbled {m.group()!r} as {repl!r}", no)
        else:
            repl = m.group(1) or ""
            log.flag(f"removed garbled tag {m.group()!r}; text before it may be damaged", no)
        log.rm("html", m.group(), no)
        line = line[: m.start()] + repl + line[m.end():]
        m = _GARBLED_CLOSE.search(line, m.start() + len(repl))
    for m in _ENTITY.finditer(line):
        log.rm("html", m.group(), no)
    line = _ENTITY.sub(lambda m: html.unescape(m.group()), line)
    return line.replace("\u00a0", " ")


def _repair_mojibake(line: str, no: int | None, log: _Log) -> str:
    def latin(m: re.Match[str]) -> str:
        run = m.group()
        for enc in ("cp1252", "latin-1"):
            try:
                fixed = run.encode(enc).decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
            log.rm("mojibake", run, no)
            log.flag(f"repaired mojibake {run!r} -> {fixed!r}", no)
            return fixed
        return run

    def gbk(run: str) -> str:
        if len(run) < 3:
            return run
        try:
            fixed = run.encode("gbk").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return run
        if not _CJK.search(fixed) or _CONTROL.search(fixed):
            return run
        log.rm("mojibake", run, no)
        log.flag(f"repaired mojibake {run!r} -> {fixed!r}", no)
        return fixed

    line = _LATIN_MOJIBAKE.sub(latin, line)
    out, last = [], 0
    for start, end in _gbk_runs(line):
        out.append(line[last:start])
        out.append(gbk(line[start:end]))
        last = end
    return "".join(out) + line[last:] if out else line


def _gbk_runs(line: str) -> list[tuple[int, int]]:
    """Spans of CJK runs holding a GBK-mojibake marker (linear, unlike a greedy regex)."""
    spans: list[tuple[int, int]] = []
    for m in _GBK_MARKER.finditer(line):
        if spans and m.start() < spans[-1][1]:
            continue
        start, end = m.start(), m.end()
        while start > 0 and _GBK_RUN_CHAR.match(line[start - 1]):
            start -= 1
        while end < len(line) and _GBK_RUN_CHAR.match(line[end]):
            end += 1
        spans.append((start, end))
    return spans


def _flag_mojibake(line: str, no: int | None, log: _Log) -> None:
    runs = [m.group() for rx in (_ODD_CHARS, _QMARK_RUN) for m in rx.finditer(line)]
    runs += [m.group() for m in _LATIN_MOJIBAKE.finditer(line) if re.search("[ÃÂ]|â€", m.group())]
    runs += [line[a:b] for a, b in _gbk_runs(line) if sum(c in _GBK_MARKERS for c in line[a:b]) >= 2]
    for run in runs:
        log.flag(f"mojibake {run!r} left as is", no)


# --- boilerplate lines ------------------------------------------------------------------------


def _mark_boilerplate(lines: list[_Line], log: _Log) -> None:
    def drop(i: int, kind: str) -> None:
        lines[i].dropped = kind
        log.rm(kind, lines[i].text, lines[i].no)

    def neighbour(i: int, step: int) -> int | None:
        j = i + step
        while 0 <= j < len(lines) and (not lines[j].text or lines[j].dropped):
            j += step
        return j if 0 <= j < len(lines) else None

    for i, ln in enumerate(lines):
        if ln.dropped or not ln.text:
            continue
        if _PROMO.match(ln.text):
            drop(i, "promo")
        elif _is_barcode(ln.text):
            drop(i, "noise")
    for i, ln in enumerate(lines):
        if ln.dropped != "promo":
            continue
        # The title of what a QR code promotes sits right above it.
        j = neighbour(i, -1)
        if _QR_PROMO.match(ln.text) and j is not None and len(lines[j].text) <= HEADING_MAX_CHARS:
            drop(j, "promo")
        # A source line right after a promo block credits the promo, not the article.
        j = neighbour(i, 1)
        if j is not None and SOURCE_NOTE.match(lines[j].text) and len(lines[j].text) <= HEADING_MAX_CHARS:
            drop(j, "promo")
    seen_items: set[str] = set()
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.dropped or not ln.text:
            i += 1
            continue
        if _NAV_MARKER.search(ln.text) and len(ln.text) <= HEADING_MAX_CHARS:
            drop(i, "navigation")
            j = i + 1
            while j < len(lines) and (not lines[j].text or lines[j].dropped or _is_link_item(lines[j].text)):
                if lines[j].text and not lines[j].dropped:
                    drop(j, "link_list")
                j += 1
            i = j
            continue
        if BULLET.match(ln.text):
            if ln.text in seen_items:
                drop(i, "repeated")
            seen_items.add(ln.text)
        i += 1


def _is_barcode(s: str) -> bool:
    digits = sum(c.isdigit() for c in s)
    return bool(_BARCODE.match(s)) and " " in s and 8 <= digits <= 18


def _is_link_item(s: str) -> bool:
    return bool(BULLET.match(s)) or (len(s) <= 40 and not any(c in SENT_END for c in s[:-1]))


# --- structure --------------------------------------------------------------------------------


def _ends_sentence(s: str) -> bool:
    s = s.rstrip(CLOSERS + " ")
    return bool(s) and (s[-1] in SENT_END or s[-1] in ".:：")


def _is_latin(s: str) -> bool:
    letters = [c for c in s if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) * 2 >= len(letters)


def _continues(prev: _Line, cur: _Line, mode: str) -> str | None:
    """The separator if ``cur`` continues the sentence in ``prev`` ("" or " "), else None."""
    p, c = prev.text, cur.text
    if BULLET.match(c) or MD_HEADING.match(c) or MD_HEADING.match(p) or BULLET.match(p):
        return None
    sep = " " if (p[-1].isascii() and c[0].isascii()) else ""
    if mode in ("markdown", "wrapped") and not cur.blank_before:
        if mode == "markdown" or not _ends_sentence(p):
            return sep
    if _ends_sentence(p) or p[-1] in CLOSERS + ",，、":
        return None
    if p[-1].isdigit() and c[0] in _UNITS:
        return ""
    if is_heading(p):
        return None
    # Hard-wrapped English inside one block.
    if not cur.blank_before and _is_latin(p) and len(p) > HEADING_MAX_CHARS and c[0].isalnum():
        return " "
    # A CJK sentence broken across (blank) lines: "超過130" / "條，...", "外國貨" / "而未能...".
    if p[-1].isdigit() and _CJK.match(c[0]):
        return ""
    if (_CJK.match(p[-1]) or p[-1].isalnum()) and (c[0] in _CONT_PUNCT or c[0] in _CONT_WORDS):
        return ""
    return None


def _join_broken(units: list[_Line], mode: str, log: _Log) -> list[_Line]:
    out: list[_Line] = []
    for u in units:
        if out:
            sep = _continues(out[-1], u, mode)
            if sep is not None:
                if u.blank_before or mode == "plain":
                    log.rm("blank_join", f"{out[-1].text[-10:]}|{u.text[:10]}", u.no)
                out[-1] = _Line(out[-1].no, out[-1].text + sep + u.text, out[-1].blank_before)
                continue
        out.append(u)
    return out


def _paragraphs(units: list[_Line], mode: str) -> list[CleanParagraph]:
    paras: list[CleanParagraph] = []
    headings: list[_Line] = []
    i = 0
    while i < len(units):
        u = units[i]
        text = MD_HEADING.sub("", u.text) if mode == "markdown" else u.text
        if is_heading(u.text) and not SOURCE_NOTE.match(u.text) and i + 1 < len(units):
            headings.append(_Line(u.no, text))
            i += 1
            continue
        if SOURCE_NOTE.match(u.text) and is_heading(u.text) and paras and not headings:
            last = paras[-1]
            paras[-1] = CleanParagraph(last.text + "\n" + text, last.heading, last.line)
            i += 1
            continue
        if BULLET.match(u.text):
            j = i
            while j < len(units) and BULLET.match(units[j].text):
                j += 1
            items = [x.text for x in units[i:j]]
            groups = ["\n".join(items)] if sum(map(len, items)) <= LIST_GROUP_CHARS else items
            for g in groups:
                paras.append(_with_heading(headings, g, units[i].no))
                headings = []
            i = j
            continue
        paras.append(_with_heading(headings, text, u.no))
        headings = []
        i += 1
    if headings:  # headings with no body after them stand as a paragraph of their own
        paras.append(CleanParagraph("\n".join(h.text for h in headings), None, headings[0].no))
    return [p for p in paras if p.text.strip()]


def _with_heading(headings: list[_Line], body: str, no: int | None) -> CleanParagraph:
    if not headings:
        return CleanParagraph(body, None, no)
    heading = "\n".join(h.text for h in headings)
    return CleanParagraph(heading + "\n" + body, heading, headings[0].no)
