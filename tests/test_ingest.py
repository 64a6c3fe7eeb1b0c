"""Loaders on real small files made here: PDF, DOCX, HTML, Big5/GB18030/BOM text, bad files."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.errors import IngestError
from rag.ingest import corpus as ingest
from rag.ingest.corpus import decode_text, doc_id_for, load_corpus, load_file

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

ZH_T = "新型工業化發展中心在香港正式成立，將聚焦企業升級轉型時面臨的技術、人才和資源等方面的痛點。"
ZH_S = "新型工业化发展中心在香港正式成立，将聚焦企业升级转型时面临的技术、人才和资源等方面的痛点。"


PDF_LINES = ("Productivity in Hong Kong.", "", ZH_T[:30], ZH_T[30:])


def pdf_bytes(lines: Sequence[str] = PDF_LINES) -> bytes:
    """A one-page PDF with a text layer: a line each (Chinese in a CID font), "" a paragraph gap."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    y = 800
    for line in lines:
        if not line:
            y -= 25
            continue
        c.setFont("Helvetica" if line.isascii() else "STSong-Light", 12)
        c.drawString(72, y, line)
        y -= 15
    c.showPage()
    c.save()
    return buf.getvalue()


def docx_bytes(heading: str = "新型工業化", paragraphs: Sequence[str] = (ZH_T, "Second paragraph in English.")) -> bytes:
    import docx

    d = docx.Document()
    d.add_heading(heading, level=1)
    for text in paragraphs:
        d.add_paragraph(text)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _one(path: Path, **kw):
    docs = load_file(path, path.parent, **kw)
    assert len(docs) == 1
    return docs[0]


# --- formats ------------------------------------------------------------------------------------


def test_pdf_with_chinese_text(tmp_path):
    f = tmp_path / "report.pdf"
    f.write_bytes(pdf_bytes())
    doc = _one(f)
    text = "\n".join(p.text for p in doc.paragraphs)
    assert "Productivity in Hong Kong." in text
    assert ZH_T in text  # the two PDF lines of one sentence are rejoined
    assert doc.doc_id == "report" and doc.title != "untitled"


def test_docx(tmp_path):
    f = tmp_path / "note.docx"
    f.write_bytes(docx_bytes())
    doc = _one(f)
    assert doc.paragraphs[0].heading == "新型工業化"
    assert doc.paragraphs[0].text == "新型工業化\n" + ZH_T
    assert doc.paragraphs[1].text == "Second paragraph in English."
    assert doc.title == "新型工業化"


def test_html(tmp_path):
    f = tmp_path / "page.html"
    f.write_text(
        "<html><head><title>頁面標題</title><script>var x = 1;</script></head><body>"
        "<nav><a href='/'>首頁</a></nav><h1>大標題</h1>"
        "<p>第一段&nbsp;內容，<b>重點</b>文字。<br>第二行。</p>"
        "<p>Second\nparagraph &amp; more.</p><ul><li>項目一</li><li>項目二</li></ul>"
        "<footer>版權所有</footer></body></html>",
        encoding="utf-8",
    )
    doc = _one(f)
    texts = [p.text for p in doc.paragraphs]
    assert doc.title == "頁面標題"
    assert texts[0] == "大標題\n第一段 內容，重點文字。"
    assert "第二行。" in texts
    assert "Second paragraph & more." in texts
    assert "- 項目一\n- 項目二" in texts
    joined = "\n".join(texts)
    assert "var x" not in joined and "首頁" not in joined and "版權所有" not in joined


@pytest.mark.parametrize(("encoding", "text"), [("big5", ZH_T), ("gb18030", ZH_S), ("utf-8-sig", ZH_T)])
def test_text_encodings(tmp_path, encoding, text):
    f = tmp_path / f"{encoding}.txt"
    f.write_bytes((text + "\n" + text).encode(encoding))
    doc = _one(f)
    assert doc.paragraphs[0].text == text
    assert not doc.paragraphs[0].text.startswith("\ufeff")
    assert doc.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()


def test_markdown(tmp_path):
    f = tmp_path / "README.md"
    f.write_text("# Title here\n\nA paragraph that is\nsoft wrapped.\n\n- one\n- two\n", encoding="utf-8")
    doc = _one(f)
    assert doc.title == "Title here"
    assert [p.text for p in doc.paragraphs] == ["Title here\nA paragraph that is soft wrapped.", "- one\n- two"]


def test_decode_text_prefers_strict_utf8():
    assert decode_text("香港".encode()) == ("香港", "utf-8")
    assert decode_text("\ufeff香港".encode())[0] == "香港"


# --- bad files --------------------------------------------------------------------------------------


def test_bad_files_are_reported_and_the_rest_loads(tmp_path):
    (tmp_path / "good.txt").write_text(ZH_T, encoding="utf-8")
    (tmp_path / "broken.pdf").write_bytes(pdf_bytes()[:300])
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blob.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / ".hidden.txt").write_text("secret", encoding="utf-8")
    (tmp_path / "paras.jsonl").write_text(
        json.dumps({"id": "x:1", "title": "T", "text": " 第一段。\x07 "}, ensure_ascii=False) + "\n"
        + "{not json\n"
        + json.dumps({"id": "x:2", "text": "第二段。"}, ensure_ascii=False) + "\n"
        + json.dumps({"id": "x:1", "text": "重複。"}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    docs, skipped = load_corpus([tmp_path])
    by_path = {s.path: s.reason for s in skipped}
    assert [d.doc_id for d in docs] == ["good", "x:1", "x:2"]
    assert "PDF" in by_path["broken.pdf"]
    assert "empty" in by_path["empty.txt"]
    assert "binary" in by_path["blob.txt"]
    assert "unsupported" in by_path["image.png"]
    assert "JSON" in by_path["paras.jsonl:2"]
    assert "duplicate" in by_path["paras.jsonl:4"]
    assert not any("hidden" in p for p in by_path)
    jsonl = {d.doc_id: d for d in docs}
    assert jsonl["x:1"].paragraphs[0].para_id == "x:1"
    assert jsonl["x:1"].paragraphs[0].text == "第一段。"
    assert jsonl["x:2"].title == "x:2"


def test_load_file_errors_name_the_file(tmp_path, monkeypatch):
    f = tmp_path / "a.xyz"
    f.write_text("x", encoding="utf-8")
    with pytest.raises(IngestError, match=r"a\.xyz: unsupported"):
        load_file(f)
    big = tmp_path / "big.txt"
    big.write_text("x" * 100, encoding="utf-8")
    monkeypatch.setattr(ingest, "MAX_BYTES", 10)
    with pytest.raises(IngestError, match="too large"):
        load_file(big)


def test_missing_path_is_skipped(tmp_path):
    docs, skipped = load_corpus([tmp_path / "nope"])
    assert docs == [] and "does not exist" in skipped[0].reason


# --- ids and metadata ---------------------------------------------------------------------------------


def test_doc_id_is_stable_when_content_changes(tmp_path):
    f = tmp_path / "2024-03-11 HKPC Report.txt"
    f.write_text("第一版。", encoding="utf-8")
    first = _one(f)
    f.write_text("第二版，內容改了。", encoding="utf-8")
    second = _one(f)
    assert first.doc_id == second.doc_id == "2024-03-11-hkpc-report"
    assert first.sha256 != second.sha256
    assert second.paragraphs[0].para_id == "2024-03-11-hkpc-report#p1"


def test_doc_id_slugs():
    assert doc_id_for("a/B c.txt") == "a--b-c"
    chinese = doc_id_for("新聞稿.txt")
    assert chinese.startswith("doc-") and chinese != doc_id_for("報告.txt")
    assert doc_id_for("報告2024.txt").startswith("2024-")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4))
def test_doc_id_is_always_safe(parts):
    rel = "/".join(parts)
    doc_id = doc_id_for(rel)
    assert doc_id and doc_id == doc_id_for(rel)
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789._-" for c in doc_id)
    assert ".." not in doc_id


def test_nested_folders_and_metadata(tmp_path):
    sub = tmp_path / "news"
    sub.mkdir()
    (sub / "a.txt").write_text("內容一。", encoding="utf-8")
    (sub / "b.txt").write_text("內容二。", encoding="utf-8")
    (sub / "metadata.json").write_text(json.dumps({"a.txt": {"title": "A 標題", "date": "2024-01-02"}}), encoding="utf-8")
    (tmp_path / "metadata.json").write_text(
        json.dumps({"news/b.txt": {"title": "B", "source": "https://example.org/b"}}), encoding="utf-8")
    docs, skipped = load_corpus([tmp_path])
    assert skipped == []
    a, b = docs
    assert (a.doc_id, a.title, a.date, a.source, a.path) == ("news--a", "A 標題", "2024-01-02", "news/a.txt", "news/a.txt")
    assert (b.doc_id, b.title, b.source) == ("news--b", "B", "https://example.org/b")


def test_same_slug_gets_a_hash(tmp_path):
    (tmp_path / "a b.txt").write_text("一。", encoding="utf-8")
    (tmp_path / "a-b.txt").write_text("二。", encoding="utf-8")
    docs, _ = load_corpus([tmp_path])
    ids = [d.doc_id for d in docs]
    assert len(set(ids)) == 2 and "a-b" in ids


# --- default corpus -------------------------------------------------------------------------------------


def test_default_corpus_is_the_shared_one_byte_for_byte():
    if not SHARED_CORPUS.is_dir():
        pytest.skip("shared corpus not present beside the checkout")
    ours = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in CORPUS.glob("*.txt"))
    theirs = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in SHARED_CORPUS.glob("*.txt"))
    assert ours == theirs


def test_default_corpus_metadata():
    meta = json.loads((CORPUS / "metadata.json").read_text(encoding="utf-8"))
    assert set(meta) == {p.name for p in CORPUS.glob("*.txt")}
    docs, skipped = load_corpus([CORPUS])
    assert skipped == [] and len(docs) == 5
    by_id = {d.doc_id: d for d in docs}
    hkpc = by_id["2024-03-11-hkpc-welcomes-two-sessions"]
    assert hkpc.date == "2024-03-11"
    assert hkpc.source == "2024-03-11-hkpc-welcomes-two-sessions.txt"
    for d in docs:
        assert d.title and len(d.title) <= ingest.TITLE_MAX
