"""Chunking: offsets slice back, chunks cover the paragraph, sentence-aware cuts with overlap."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.errors import InputError
from rag.ingest.chunking import chunk_documents, chunk_paragraph, split_spans
from rag.ingest.corpus import load_corpus
from rag.types import Paragraph

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _para(text: str) -> Paragraph:
    return Paragraph(para_id="doc#p1", doc_id="doc", n=1, text=text)


def _check(p: Paragraph, chunks, max_chars: int) -> None:
    assert chunks[0].start == 0 and chunks[-1].end == len(p.text)
    for c in chunks:
        assert p.text[c.start:c.end] == c.text
        assert c.chunk_id == f"{p.para_id}@{c.start}" and c.para_id == p.para_id and c.doc_id == p.doc_id
        assert 0 < c.end - c.start <= max_chars or len(p.text) == 0
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.start < b.start <= a.end < b.end  # ordered, no gap, always progressing


def test_short_paragraph_is_one_chunk():
    p = _para("短段落。")
    assert chunk_paragraph(p) == [chunk_paragraph(p)[0]]
    c = chunk_paragraph(p)[0]
    assert (c.start, c.end, c.text, c.chunk_id) == (0, len(p.text), p.text, "doc#p1@0")


def test_long_paragraph_splits_at_sentence_ends_with_overlap():
    sentences = [f"這是第{i}句，內容關於新型工業化的發展和創新科技。" for i in range(20)]
    p = _para("".join(sentences))
    chunks = chunk_paragraph(p, max_chars=100, overlap=30)
    _check(p, chunks, 100)
    assert len(chunks) > 1
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.text.endswith("。")  # cut at a sentence end
        assert 0 < a.end - b.start <= 30  # overlapping by whole sentences within the budget
        assert p.text[b.start - 1] == "。"


def test_english_sentences_split_after_period_space():
    p = _para(" ".join(f"Sentence number {i} talks about retrieval." for i in range(30)))
    chunks = chunk_paragraph(p, max_chars=120, overlap=50)
    _check(p, chunks, 120)
    assert all(c.text[0].isupper() for c in chunks)


def test_single_long_sentence_is_hard_split():
    p = _para("字" * 1000)
    chunks = chunk_paragraph(p, max_chars=400, overlap=60)
    _check(p, chunks, 400)
    assert [(c.start, c.end) for c in chunks] == [(0, 400), (340, 740), (680, 1000)]


def test_bad_parameters_say_how_to_fix():
    with pytest.raises(InputError, match="overlap"):
        split_spans("x" * 10, max_chars=10, overlap=10)
    with pytest.raises(InputError, match="max_chars"):
        split_spans("x", max_chars=0, overlap=0)


def test_default_corpus_chunks():
    docs, _ = load_corpus([CORPUS])
    chunks = chunk_documents(docs, 400, 60)
    by_para = {p.para_id: p for d in docs for p in d.paragraphs}
    assert {c.para_id for c in chunks} == set(by_para)
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    for pid, p in by_para.items():
        _check(p, [c for c in chunks if c.para_id == pid], 400)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("字詞ab 。，！？.\n;")) | st.characters(), min_size=1, max_size=600),
    st.integers(min_value=1, max_value=300),
    st.data(),
)
def test_chunk_invariants(text, max_chars, data):
    overlap = data.draw(st.integers(min_value=0, max_value=max_chars - 1))
    p = _para(text)
    _check(p, chunk_paragraph(p, max_chars, overlap), max_chars)
