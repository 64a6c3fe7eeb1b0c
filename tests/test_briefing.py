"""Briefings: POST /api/briefing (real server, real index) and `rag brief`; every reference in
the produced .docx is checked against the index."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rag import briefing
from rag.text.normalise import convert_script

QUESTIONS = ["香港如何推動新型工業化？", "什么是新质生产力？", "How is Hong Kong promoting new industrialisation?",
             "How many goals did Messi score in 2012?"]


# -- rendering (fast) ---------------------------------------------------------------------------


def _sample() -> briefing.Briefing:
    ref = briefing.Reference(n=1, para_id="d#p2", doc_id="d", title="標題 *星*", date="2024-05-01",
                             source="https://example.hk/a", text="第一行\n# 不是標題 <b>粗</b>")
    return briefing.Briefing((
        briefing.BriefingItem("問題一？", "答案。[1]", False, (ref,)),
        briefing.BriefingItem("Unanswered?", "No source found.", True, (), "no paragraph reached the floor"),
    ))


def test_markdown_keeps_corpus_text_literal():
    md = briefing.to_markdown(_sample())
    assert md.startswith("# 簡報 Briefing\n")
    assert "## 1. 問題一？" in md and "## 2. Unanswered?" in md
    assert "1. **標題 \\*星\\*** — 2024-05-01 · https://example.hk/a · `d#p2`" in md
    assert "   > 第一行\n   > \\# 不是標題 \\<b\\>粗\\</b\\>" in md  # no heading, no HTML
    assert "No references: no paragraph reached the floor" in md


def test_docx_has_each_item_and_reference():
    import docx

    doc = docx.Document(io.BytesIO(briefing.to_docx(_sample())))
    texts = [p.text for p in doc.paragraphs]
    assert texts[0] == "簡報 Briefing"
    assert "1. 問題一？" in texts and "答案。[1]" in texts
    i = texts.index("[1] 標題 *星*")
    assert texts[i + 1] == "2024-05-01 · https://example.hk/a · d#p2"
    assert texts[i + 2] == "第一行\n# 不是標題 <b>粗</b>"
    assert any(t.startswith("沒有引用來源 No references: no paragraph") for t in texts)


def test_labels_follow_the_script():
    b = briefing.Briefing(_sample().items, script="hans")
    assert briefing.to_markdown(b).startswith("# 简报 Briefing\n")


def test_read_questions_skips_blanks_and_comments():
    assert briefing.read_questions(["# title", "", " 問題？ ", "  # note", "Q2"]) == ["問題？", "Q2"]


# -- against the real index (slow) --------------------------------------------------------------


def docx_references(data: bytes) -> list[dict[str, Any]]:
    """The references of a briefing .docx: ``[n] title`` / ``date · source · para_id`` / text."""
    import docx

    paras = [p.text for p in docx.Document(io.BytesIO(data)).paragraphs]
    refs = []
    for i, text in enumerate(paras):
        m = re.fullmatch(r"\[(\d+)\] (.+)", text)
        if m:
            meta = paras[i + 1].split(" · ")
            refs.append({"n": int(m.group(1)), "title": m.group(2), "meta": meta, "para_id": meta[-1],
                         "text": paras[i + 2]})
    return refs


def check_against_index(refs: list[dict[str, Any]], service: Any, config: str | None) -> None:
    conv = (lambda t: convert_script(t, config)) if config else (lambda t: t)
    for ref in refs:
        para = service.paragraph(ref["para_id"])  # NotFoundError if the id is not in the index
        doc = service.document(para.doc_id)
        assert ref["text"] == conv(para.text), ref
        assert ref["title"] == conv(doc.title), ref
        assert ref["meta"] == [x for x in (doc.date, doc.source, para.para_id) if x], ref


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, encoder):
    from tests.server_utils import tiny_index

    return tiny_index(tmp_path_factory.mktemp("brief"), encoder)


@pytest.fixture(scope="module")
def service(tiny, encoder):
    from rag.service import RagService

    settings, index_dir = tiny
    return RagService.open(index_dir, settings, encoder=encoder)


@pytest.fixture(scope="module")
def client(tiny, service):
    from rag.api.app import create_app
    from tests.server_utils import serve_app

    with serve_app(create_app(tiny[0], service=service, ui=False)) as srv, srv.client() as c:
        yield c


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("script", ["original", "hk", "hans"])
def test_api_briefing_docx_references_match_the_index(client, service, script):
    r = client.post("/api/briefing", json={"questions": QUESTIONS, "format": "docx", "script": script})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == briefing.FORMATS["docx"]
    assert re.fullmatch(r'attachment; filename="briefing-\d{8}-\d{6}\.docx"', r.headers["content-disposition"])
    refs = docx_references(r.content)
    # The same references the answers cite, in order, for every answered question.
    want = [(c["n"], c["para_id"]) for q in QUESTIONS for c in service.ask(q, 5).to_dict()["citations"]]
    assert [(ref["n"], ref["para_id"]) for ref in refs] == want and len(want) >= 3
    check_against_index(refs, service, briefing.script_config(script))
    import docx

    texts = [p.text for p in docx.Document(io.BytesIO(r.content)).paragraphs]
    config = briefing.script_config(script)
    for i, q in enumerate(QUESTIONS, 1):
        assert f"{i}. {convert_script(q, config) if config else q}" in texts


@pytest.mark.slow
@pytest.mark.model
def test_api_briefing_from_answers_already_given(client, service):
    asked = [{**client.post("/api/ask", json={"question": q, "script": "hans"}).json(), "question": q}
             for q in QUESTIONS[:2]]
    asked.reverse()  # the caller's order is kept
    r = client.post("/api/briefing", json={"answers": asked, "format": "md", "script": "tw"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/markdown")
    assert r.headers["content-disposition"].endswith('.md"')
    md = r.text
    assert md.index("## 1. " + convert_script(QUESTIONS[1], "s2twp")) < md.index("## 2. ")
    for a in asked:
        for c in a["citations"]:
            para = service.paragraph(c["para_id"])
            assert f"`{c['para_id']}`" in md
            first_line = convert_script(para.text, "s2twp").split("\n")[0]
            assert f"   > {first_line}" in md


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("body, mentions", [
    ({"format": "docx"}, "either questions or answers"),
    ({"questions": ["a"], "answers": [{"question": "a", "answer": "b"}]}, "either questions or answers"),
    ({"questions": []}, "at least 1"),
    ({"questions": ["香港？"], "format": "pdf"}, "format"),
    ({"questions": ["香港？"], "script": "klingon"}, "script"),
    ({"questions": ["q"] * 51}, "at most 50"),
    ({"answers": [{"question": "q", "answer": "a [1]", "citations": [{"n": 1, "para_id": "nope#p9"}]}]},
     "nope#p9"),
])
def test_api_briefing_rejects_bad_input(client, body, mentions):
    r = client.post("/api/briefing", json=body)
    assert r.status_code in (400, 422), r.text
    err = r.json()["error"]
    assert mentions in err["message"], err
    assert "Traceback" not in r.text


@pytest.mark.slow
@pytest.mark.model
def test_cli_brief_writes_docx_and_md(tiny, service, tmp_path):
    from rag.cli import main

    settings, index_dir = tiny
    questions = tmp_path / "questions.txt"
    questions.write_text("# 簡報問題\n" + "\n\n".join(QUESTIONS) + "\n", encoding="utf-8")
    out = tmp_path / "brief.docx"
    result = CliRunner().invoke(main, ["brief", str(questions), "-o", str(out), "--script", "hk",
                                       "--index", str(index_dir)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 4 questions" in result.output and "1 without a source" in result.output
    refs = docx_references(out.read_bytes())
    assert refs
    check_against_index(refs, service, "s2hk")

    md = tmp_path / "brief.md"
    result = CliRunner().invoke(main, ["brief", "-", "-o", str(md), "--index", str(index_dir)],
                                input=QUESTIONS[0] + "\n")
    assert result.exit_code == 0, result.output
    assert md.read_text(encoding="utf-8").count("## ") == 1


def test_cli_brief_bad_input_is_one_clean_line(tmp_path: Path):
    from rag.cli import main

    empty = tmp_path / "q.txt"
    empty.write_text("# nothing\n\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["brief", str(empty), "-o", str(tmp_path / "b.docx")])
    assert result.exit_code == 2 and "has no questions" in result.output
    result = CliRunner().invoke(main, ["brief", str(empty), "-o", str(tmp_path / "b.pdf")])
    assert result.exit_code == 2 and ".docx or .md" in result.output
    result = CliRunner().invoke(main, ["brief", str(tmp_path / "missing.txt")])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_docx_drops_characters_xml_forbids():
    import docx

    item = briefing.BriefingItem("問\x1b題\x00？", "答\x0b案。", True, (), None)
    doc = docx.Document(io.BytesIO(briefing.to_docx(briefing.Briefing((item,)))))
    assert "1. 問 題 ？" in [p.text for p in doc.paragraphs]


@pytest.mark.slow
@pytest.mark.model
def test_docx_opens_in_libreoffice(client, tmp_path):
    """LibreOffice (when installed) converts the briefing to PDF with every para_id in it."""
    import shutil
    import subprocess

    soffice = shutil.which("soffice")
    if not soffice or not shutil.which("pdftotext"):
        pytest.skip("LibreOffice/pdftotext missing: apt-get install libreoffice-writer-nogui poppler-utils")
    r = client.post("/api/briefing", json={"questions": QUESTIONS[:2], "format": "docx"})
    path = tmp_path / "b.docx"
    path.write_bytes(r.content)
    subprocess.run([soffice, "--headless", f"-env:UserInstallation=file://{tmp_path}/lo", "--convert-to", "pdf",
                    "--outdir", str(tmp_path), str(path)], check=True, capture_output=True, timeout=180)
    text = subprocess.run(["pdftotext", str(tmp_path / "b.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    refs = docx_references(r.content)
    assert refs and all(ref["para_id"] in text for ref in refs)
    assert "參考資料 References" in text and "1. " + QUESTIONS[0] in text
