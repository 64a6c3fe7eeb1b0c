"""Bad input at the CLI and service edges: a clear one-line error, never a traceback.

The HTTP edge (invalid JSON, wrong types, unknown ids, traversal in path ids) is covered in
``tests/test_api.py``; here: `rag index` over a folder of broken files (each reported with its
reason, the rest indexed, exit 0), `rag ask` / `rag search` with bad questions and ``-k``
(exit 2, one line), and the service's own validation that every edge relies on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import rag.embedding
from rag.cli import main
from rag.config import Settings, get_settings
from rag.errors import InputError, NotFoundError
from rag.index.build import build_index
from rag.index.manifest import read_manifest
from rag.ingest.corpus import MAX_BYTES
from rag.service import MAX_K, RagService
from tests.fakes import HashingEncoder

ROOT = Path(__file__).resolve().parents[1]
GOOD = {
    "good-1.txt": "香港推動新型工業化\n\n特區政府表示，香港正積極推動新型工業化，發展先進製造業。",
    "good-2.md": "# 新質生產力\n\n生產力局表示，香港可以在國家發展新質生產力中發揮獨特作用。",
    "good-3.html": "<html><head><title>AI centre</title></head><body><p>數碼港人工智能超算中心投入服務。</p></body></html>",
}


def one_clean_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text and 'File "' not in text
    return lines[0]


@pytest.fixture
def fake_encoder(monkeypatch):
    """`rag` commands in process get the fast hashing encoder instead of loading the model."""
    enc = HashingEncoder()
    monkeypatch.setattr(rag.embedding, "get_encoder", lambda *a, **k: enc)
    monkeypatch.setenv("RAG_EMBED_MODEL", "test-hashing")
    get_settings.cache_clear()
    yield enc
    get_settings.cache_clear()


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in GOOD.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "notes.xyz").write_text("unsupported type", encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text("   \n\n\t\n", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8)
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R\nthis is not a pdf")
    (folder / "corrupt.docx").write_bytes(b"PK\x03\x04 definitely not a zip archive")
    # UTF-16 byte order mark followed by an odd number of bytes: no decoder accepts it.
    (folder / "undecodable.txt").write_bytes(b"\xff\xfe" + "香港".encode("utf-16-le") + b"\x00")
    with open(folder / "huge.txt", "wb") as fh:  # sparse: no real disk used
        fh.truncate(MAX_BYTES + 1)
    (folder / "bad-lines.jsonl").write_text(
        "{not json}\n" + json.dumps({"id": "ok#1", "text": "可用的段落。"}, ensure_ascii=False) + "\n"
        + json.dumps({"id": "", "text": "no id"}) + "\n", encoding="utf-8")
    (folder / "traversal.jsonl").write_text(
        json.dumps({"id": "../../../etc/passwd", "title": "t", "text": "路徑穿越測試段落。"}, ensure_ascii=False) + "\n",
        encoding="utf-8")
    return folder


EXPECTED_REASONS = {
    "notes.xyz": "unsupported file type",
    "empty.txt": "empty file",
    "blank.md": "no text left",
    "binary.txt": "binary",
    "corrupt.pdf": "corrupt or unreadable PDF",
    "corrupt.docx": "corrupt or unreadable DOCX",
    "undecodable.txt": "undecodable",
    "huge.txt": "too large",
    "bad-lines.jsonl:1": "not a JSON line",
    "bad-lines.jsonl:3": "empty id or text",
}


def test_rag_index_reports_each_bad_file_and_indexes_the_rest(bad_folder, tmp_path, fake_encoder):
    index_dir = tmp_path / "index"
    result = CliRunner().invoke(main, ["index", str(bad_folder), "--index", str(index_dir), "-q"],
                                env={"RAG_CACHE_DIR": str(tmp_path / "cache")})
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    skipped = {ln.split("skipped ", 1)[1].split(": ", 1)[0]: ln for ln in result.output.splitlines()
               if ln.strip().startswith("skipped ")}
    for name, reason in EXPECTED_REASONS.items():
        assert name in skipped, f"{name} not reported:\n{result.output}"
        assert reason in skipped[name], skipped[name]
    assert len(skipped) == len(EXPECTED_REASONS), skipped

    manifest = read_manifest(index_dir)
    assert manifest is not None
    assert manifest["counts"]["documents"] == 5  # the 3 good files + ok#1 + the traversal line
    settings = Settings(index_dir=index_dir, cache_dir=tmp_path / "cache", embed_model="test-hashing")
    svc = RagService.open(index_dir, settings, encoder=fake_encoder)
    assert {"good-1", "good-2", "good-3"} <= set(svc.index.documents)
    # A traversal-looking id is only a name: the doc_id is made safe, nothing is written outside.
    traversal = next(d for d in svc.documents() if d.path == "traversal.jsonl")
    assert "/" not in traversal.doc_id and ".." not in traversal.doc_id
    assert svc.paragraph("../../../etc/passwd").text == "路徑穿越測試段落。"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "corpus", "index"]
    assert svc.search("新型工業化", k=1)[0].doc_id == "good-1"


def test_index_of_only_bad_files_still_succeeds_empty_handed(tmp_path, fake_encoder):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"\x00\x01")
    (folder / "b.txt").write_bytes(b"")
    result = CliRunner().invoke(main, ["index", str(folder), "--index", str(tmp_path / "ix"), "-q"],
                                env={"RAG_CACHE_DIR": str(tmp_path / "cache")})
    assert "Traceback" not in result.output
    assert "skipped a.bin" in result.output and "skipped b.txt" in result.output
    assert result.exit_code == 0, result.output  # an empty index is built, not refused
    assert "indexed 0 documents" in result.output
    assert read_manifest(tmp_path / "ix")["counts"]["documents"] == 0


# -- rag ask / rag search ------------------------------------------------------------------------

BAD_QUESTIONS = [
    pytest.param("", "empty", id="empty"),
    pytest.param("   \t  ", "empty", id="whitespace"),
    pytest.param("\x01\x02\x1b\x7f", "empty", id="control-only"),
    pytest.param("工" * 100_000, "the limit is", id="100k-chars"),
]


@pytest.mark.parametrize("command", ["ask", "search"])
@pytest.mark.parametrize(("question", "says"), BAD_QUESTIONS)
def test_bad_question_is_exit_2_and_one_line(tmp_path, command, question, says):
    result = CliRunner().invoke(main, [command, question, "--index", str(tmp_path / "none")])
    assert result.exit_code == 2, result.output
    line = one_clean_line(result.output)
    assert line.startswith("error: ") and says in line


@pytest.mark.parametrize("k", ["0", "-1", str(MAX_K + 1)])
def test_k_out_of_range_is_exit_2_and_one_line(tmp_path, k):
    result = CliRunner().invoke(main, ["ask", "新型工業化", "-k", k, "--index", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert f"k must be 1..{MAX_K}" in one_clean_line(result.output)


def test_k_not_a_number_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["ask", "新型工業化", "-k", "many"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "'many' is not a valid integer" in result.output


def test_real_process_bad_questions_fail_fast_without_traceback(tmp_path):
    """A real `rag ask` subprocess: validation comes before loading the model, so this is quick."""
    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path / "none")}
    cases = [(["ask", ""], None), (["ask", "-"], "\x00\x07  \n"), (["search", "-"], "a" * 100_000),
             (["ask", "工業化", "-k", "0"], None)]
    for args, stdin in cases:
        proc = subprocess.run([sys.executable, "-m", "rag.cli", *args], input=stdin, capture_output=True,
                              text=True, env=env, timeout=120, cwd=ROOT)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == ""
        assert one_clean_line(proc.stderr).startswith("error: ")


def test_ask_with_control_characters_inside_still_answers(tmp_path, fake_encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(GOOD["good-1.txt"], encoding="utf-8")
    index_dir = tmp_path / "index"
    env = {"RAG_CACHE_DIR": str(tmp_path / "cache")}
    assert CliRunner().invoke(main, ["index", str(corpus), "--index", str(index_dir), "-q"], env=env).exit_code == 0
    result = CliRunner().invoke(main, ["search", "新型\x00工業化\x1b", "--json", "--index", str(index_dir)], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hits"][0]["doc_id"] == "a"


# -- the service: what every edge relies on ------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input-svc")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in GOOD.items():
        (corpus / name).write_text(text, encoding="utf-8")
    settings = Settings(index_dir=root / "index", cache_dir=root / "cache", embed_model="test-hashing")
    enc = HashingEncoder()
    build_index([corpus], settings.index_dir, settings, encoder=enc)
    return RagService.open(settings.index_dir, settings, encoder=enc)


@pytest.mark.parametrize(("question", "says"), [
    (None, "must be a string"), (123, "must be a string"), (["q"], "must be a string"),
    ("", "empty"), (" \n\t ", "empty"), ("\x00\x1f", "empty"), ("x" * 2001, "the limit is 2000"),
])
def test_service_rejects_bad_questions(service, question, says):
    for call in (service.ask, service.search):
        with pytest.raises(InputError, match=says):
            call(question)


@pytest.mark.parametrize("k", [0, -5, MAX_K + 1, 10**9, True, "5", 2.5, None])
def test_service_rejects_bad_k(service, k):
    for call in (service.ask, service.search):
        with pytest.raises(InputError, match="k must be"):
            call("新型工業化", k)


@pytest.mark.parametrize("ident", [
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "good-1/../../x", "good-1#p999",
    "\x00", "", "a" * 5000, "good-1\u202e",
])
def test_unknown_and_traversal_ids_are_not_found(service, ident):
    with pytest.raises(NotFoundError, match="no document"):
        service.document(ident)
    with pytest.raises(NotFoundError, match="no paragraph"):
        service.paragraph(ident)


def test_valid_edges_are_accepted(service):
    assert len(service.search("新型工業化", k=MAX_K)) >= 1
    assert service.search("x" * 2000, k=1) is not None
    assert service.ask("  新型工業化？\n", k=1).answer  # answered (or abstained), not refused
