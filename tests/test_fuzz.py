"""Property-based tests, bounded so they run in CI (a few seconds each).

* Text path (hypothesis): cleaning in every mode, chunking, BM25 tokenisation and decoding
  never crash on any input and keep their stated invariants. (``test_clean.py`` and
  ``test_chunking.py`` cover plain-mode idempotence and the chunk invariants; these add the
  other modes, whole documents, the tokeniser and encodings round-trips.)
* HTTP (schemathesis): every operation of the app's own OpenAPI schema, called in process
  (ASGI, no socket) over a tiny real index with the fast hashing encoder, in positive and
  negative generation modes: no 5xx, and status code, content type and body conform to the
  schema. ``tests/test_api.py`` fuzzes a live server for "no 5xx"; this checks conformance.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rag.errors import IngestError
from rag.ingest.chunking import chunk_documents, chunk_paragraph
from rag.ingest.clean import clean_text
from rag.ingest.corpus import decode_text, load_file
from rag.text.normalise import Normaliser
from rag.types import Paragraph

PROPS = settings(max_examples=150, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# Text that looks like the corpus: CJK, pinyin repairs, HTML leftovers, boilerplate, control chars.
_PIECES = st.sampled_from([
    "生產", "(chǎn)", "力局", "新型工業化", "工业化", "。", "，", "！", "？", "；", "\n", "\n\n", "\r\n", " ",
    "# ", "- ", "* ", "> ", "```", "<p>", "</p>", "<script>alert(1)</script>", "&amp;", "&#x4e2d;", "&nbsp;",
    "掃碼睇片", "評論:0", "(左)", "(FLAIR)", "Hello world.", "AI", "3.5%", "130", "條", "\u3000", "\t",
    "\x00", "\x0b", "\x1b[31m", "\u200b", "\ufeff", "\ufffd", "Ã©", "é", "e\u0301", "𠀀", "🙂", "\u202e",
])
corpus_like = st.lists(_PIECES, max_size=60).map("".join)
any_text = st.one_of(st.text(max_size=400), corpus_like)


# -- cleaning ------------------------------------------------------------------------------------


@PROPS
@given(any_text, st.sampled_from(["plain", "markdown", "wrapped"]))
def test_clean_text_any_mode_never_raises_and_keeps_shape(raw, mode):
    r = clean_text(raw, mode=mode)
    for p in r.paragraphs:
        assert p.text.strip() and "\n\n" not in p.text, "a paragraph is never blank or two paragraphs"
        if p.heading is not None:
            assert p.text.startswith(p.heading)
    for removed in r.removed:
        assert isinstance(removed.kind, str) and removed.kind
    # The cleaned text of a plain pass is a fixpoint (what the loader stores is stable).
    assert clean_text(r.text).text == clean_text(clean_text(r.text).text).text


@PROPS
@given(corpus_like)
def test_clean_text_drops_no_cjk_content_wholesale(raw):
    """Cleaning repairs; it must not lose a whole document of real sentences."""
    sentence = "香港正積極推動新型工業化，發展先進製造業。"
    r = clean_text(raw + "\n\n" + sentence)
    assert "新型工業化" in r.text


# -- chunking ------------------------------------------------------------------------------------


@PROPS
@given(any_text, st.integers(min_value=1, max_value=120), st.data())
def test_chunks_of_cleaned_documents_cover_every_paragraph(raw, max_chars, data):
    from rag.types import Document

    overlap = data.draw(st.integers(min_value=0, max_value=max_chars - 1))
    r = clean_text(raw)
    paras = tuple(Paragraph(f"d#p{n}", "d", n, p.text, p.heading) for n, p in enumerate(r.paragraphs, 1))
    doc = Document("d", "t", "s", "0" * 64, paras)
    chunks = chunk_documents([doc], max_chars, overlap)
    for p in paras:
        mine = [c for c in chunks if c.para_id == p.para_id]
        assert mine and mine[0].start == 0 and mine[-1].end == len(p.text)
        covered = 0
        for c in mine:
            assert p.text[c.start:c.end] == c.text and 0 < len(c.text) <= max_chars
            assert c.start <= covered, "a gap between chunks"
            covered = max(covered, c.end)
        assert len({c.chunk_id for c in mine}) == len(mine)


@PROPS
@given(st.text(min_size=1, max_size=300))
def test_chunk_paragraph_defaults_never_raise(text):
    p = Paragraph("x#p1", "x", 1, text)
    chunks = chunk_paragraph(p)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(0 < len(c.text) <= 400 and text[c.start:c.end] == c.text for c in chunks)


# -- normalisation / tokenisation ----------------------------------------------------------------


@pytest.fixture(scope="module")
def normaliser():
    return Normaliser("t2s")


@PROPS
@given(any_text)
def test_tokenise_never_raises_and_gives_clean_tokens(normaliser, text):
    tokens = normaliser.tokenise(text)
    for t in tokens:
        assert t and t == t.strip()
        assert not any(ch in t for ch in "\x00\x0b\x1b")
    # Matching is script-blind: the same text in Traditional or Simplified tokenises alike.
    assert normaliser.tokenise(normaliser.normalise(text)) == tokens


@PROPS
@given(st.text(alphabet=st.sampled_from(list("工業化產業數碼發展創新科技香港")), min_size=1, max_size=30))
def test_traditional_and_simplified_tokenise_the_same(normaliser, text):
    from rag.text.normalise import convert_script

    assert normaliser.tokenise(text) == normaliser.tokenise(convert_script(text, "t2s"))


# -- decoding ------------------------------------------------------------------------------------


@PROPS
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=200),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]),
)
def test_decode_text_round_trips_unicode_encodings(text, encoding):
    decoded, _ = decode_text(text.encode(encoding))
    assert decoded == text


@PROPS
@given(st.text(alphabet=st.sampled_from(list("香港推動新型工業化，生產力局主席表示。創新科技")), min_size=8, max_size=200),
       st.sampled_from(["big5", "gb18030"]))
def test_decode_text_reads_legacy_chinese_encodings(text, encoding):
    try:
        decoded, _ = decode_text(text.encode(encoding))
    except IngestError:
        return  # a short run may be ambiguous; refusing it is allowed, garbling is not checked here
    assert decoded


@PROPS
@given(st.binary(max_size=2000), st.sampled_from([".txt", ".md", ".html", ".pdf", ".docx", ".jsonl"]))
def test_any_bytes_in_any_format_are_a_document_or_an_ingest_error(tmp_path_factory, data, ext):
    folder = tmp_path_factory.mktemp("fuzz-file")
    path = folder / f"f{ext}"
    path.write_bytes(data)
    try:
        docs = load_file(path, folder, skipped=[])
    except IngestError as exc:
        assert "f" + ext in str(exc)
        return
    for d in docs:
        assert d.paragraphs and all(p.text.strip() for p in d.paragraphs)


# -- the HTTP API, from its own OpenAPI schema ----------------------------------------------------

TINY = {
    "industrialisation.txt": "香港推動新型工業化\n\n特區政府表示，香港正積極推動新型工業化。\n\n創新科技及工業局成立新型工業化辦公室。",
    "productivity.txt": "新質生產力與香港\n\n生產力局表示，香港可以在國家發展新質生產力中發揮獨特作用。",
}


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    from rag.api.app import create_app
    from rag.config import Settings
    from rag.index.build import build_index
    from rag.service import RagService
    from tests.fakes import HashingEncoder

    root = tmp_path_factory.mktemp("fuzz-api")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in TINY.items():
        (corpus / name).write_text(text, encoding="utf-8")
    (corpus / "extra.jsonl").write_text(
        json.dumps({"id": "extra#p1", "title": "Extra", "text": "Hong Kong new industrialisation."}) + "\n",
        encoding="utf-8")
    s = Settings(index_dir=root / "index", cache_dir=root / "cache", embed_model="test-hashing",
                 api_keys=None, cors_origins=None)
    enc = HashingEncoder()
    build_index([corpus], s.index_dir, s, encoder=enc)
    service = RagService.open(s.index_dir, s, encoder=enc)
    return create_app(s, service=service, ui=False)


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_api_conforms_to_its_openapi_schema(api_schema, mode):
    """Every operation, 25 generated requests each: no 5xx; status, content type and body as documented."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8, [op.label for op in operations]
    failures: dict[str, str] = {}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            # /v1/chat/completions documents both application/json and text/event-stream (stream=true).
            case.validate_response(response, checks=CHECKS)
            if response.status_code >= 400:
                body = response.json()
                assert set(body["error"]) == {"code", "message"}, body
                assert "Traceback" not in response.text

        try:
            check()
        except Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE  # an operation without inputs has no invalid request
        except Exception as exc:  # collect every operation's failure, then report them together
            failures[operation.label] = str(exc)[:3000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
