"""The integer-row retriever against a plain per-paragraph reference, on a fake encoder."""

from __future__ import annotations

import numpy as np
import pytest

from rag.config import Settings
from rag.index.build import build_index
from rag.ingest.chunking import chunk_paragraph, sentence_chunks
from rag.retrieval.hybrid import _ranges, _segment_argmax
from rag.service import RagService
from tests.fakes import HashingEncoder


def test_ranges_concatenates_aranges():
    starts, ends = np.array([3, 0, 7, 7]), np.array([5, 2, 7, 9])
    assert _ranges(starts, ends).tolist() == [3, 4, 0, 1, 7, 8]
    assert _ranges(np.array([], dtype=np.int64), np.array([], dtype=np.int64)).tolist() == []


def test_segment_argmax_first_of_ties_and_empty_segments():
    values = np.array([0.1, 0.9, 0.9, 0.5, 0.2, 0.7])
    lengths = np.array([3, 0, 3])  # segment 1 is empty
    assert _segment_argmax(values, lengths).tolist() == [1, 0, 5]
    assert _segment_argmax(np.array([]), np.array([0, 0])).tolist() == [0, 0]


def test_segment_argmax_matches_a_loop_on_random_segments():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        counts = rng.integers(0, 6, size=n)
        segment = np.repeat(np.arange(n), counts)
        values = rng.integers(0, 4, size=len(segment)).astype(np.float32)  # many ties
        want = [int(np.flatnonzero(segment == s)[np.argmax(values[segment == s])]) if counts[s] else 0
                for s in range(n)]
        assert _segment_argmax(values, counts).tolist() == want


def test_float32_of_float16_rows_is_exact():
    from rag.retrieval.hybrid import _float32

    rows = np.random.default_rng(4).standard_normal((50, 384)).astype(np.float16)
    rows[0, :3] = [0.0, -0.0, 6e-8]  # zeros and a subnormal
    out = _float32(rows[::2])  # a strided view, as a gather may give
    assert out.dtype == np.float32 and np.array_equal(out, rows[::2].astype(np.float32))
    same = np.ones((2, 3), dtype=np.float32)
    assert _float32(same) is same


SENTENCES = [
    "香港正推進新型工業化，發展先進製造業。", "生產力局主席表示新質生產力是重要力量。",
    "數碼港人工智能超算中心首階段投入服務。", "政府推出三十億元人工智能資助計劃。",
    "河套深港科技創新合作區香港園區落成。", "創新科技署推動再工業化資助計劃。",
    "微電子研發院成立，聚焦第三代半導體。", "北部都會區將發展成為創科新引擎。",
]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("rows")
    corpus = root / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    for d in range(6):
        paras = ["".join(rng.choice(SENTENCES, size=int(rng.integers(1, 9)))) for _ in range(5)]
        (corpus / f"doc{d}.txt").write_text("\n\n".join(paras), encoding="utf-8")
    settings = Settings(index_dir=root / "index", cache_dir=root / "cache", embed_model="test-hashing",
                        chunk_max_chars=60, chunk_overlap_chars=10, lexical_weight=0.3)
    enc = HashingEncoder()
    build_index([corpus], settings.index_dir, settings, encoder=enc)
    return RagService.open(settings.index_dir, settings, encoder=enc), enc, settings


@pytest.mark.parametrize("query", ["人工智能資助計劃", "新型工业化", "半導體研發", "超算中心何時投入服務"])
def test_scores_match_a_per_paragraph_reference(service, query):
    svc, enc, settings = service
    index = svc.index
    q = enc.encode([query], kind="query")[0]
    lex = index.bm25.search(svc.normaliser.tokenise(query), 1).at(np.arange(len(index.chunk_ids)))
    dense_ref, lex_ref = {}, {}
    for pid in index.paragraphs:
        p = index.paragraphs[pid]
        chunks = chunk_paragraph(p, settings.chunk_max_chars, settings.chunk_overlap_chars)
        rows = [index.chunk_ids.row(c.chunk_id) for c in chunks]
        ccos = max(float(enc.encode([c.text], kind="passage")[0] @ q) for c in chunks)
        sents = sentence_chunks(p)
        scos = max((float(enc.encode([s.text], kind="passage")[0] @ q) for s in sents), default=ccos)
        dense_ref[pid] = (ccos + scos) / 2
        lex_ref[pid] = float(lex[rows].max())
    dense, lexical, best_chunk = svc.retriever.component_scores(svc.question(query), q)
    assert dense  # every paragraph of this small corpus is a candidate
    for pid, score in dense.items():
        assert score == pytest.approx(dense_ref[pid], abs=2e-3)  # sentence vectors are float16
        assert lexical[pid] == pytest.approx(lex_ref[pid], rel=1e-6)
        assert best_chunk[pid].startswith(pid + "@")
    hits = svc.search(query, k=5)
    top = max(lex_ref.values())
    fused = {p: 0.7 * dense[p] + 0.3 * (lex_ref[p] / top if top else 0.0) for p in dense}
    want = sorted(fused, key=lambda p: (-fused[p], p))[:5]
    assert [h.para_id for h in hits] == want
    for h in hits:
        if h.best_sentence is not None:
            a, b = h.best_sentence
            assert h.text[a:b].strip() and b - a >= 8
