"""Incremental indexing: an index updated step by step equals a fresh full build of the same corpus.

Each step edits the corpus (add, change, delete, rename, a metadata change, a jsonl line), updates
one index in place and builds another from scratch, then compares what a user sees: the rows,
the hits of a set of queries with their dense, lexical and fused scores, and the BM25 scores of
every row. A settings change must rebuild everything; an unchanged corpus must do nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.index.build import build_index
from rag.index.loaded import LoadedIndex
from rag.index.manifest import read_manifest
from rag.service import RagService
from rag.store.bm25state import BM25State
from rag.store.lexical import BM25Index
from tests.fakes import HashingEncoder

ROOT = Path(__file__).resolve().parents[1]

DOCS = {
    "alpha.txt": "生產力局主席陳祖恒表示，新質生產力是推動香港發展的重要力量。\n\n香港正推進新型工業化，發展先進製造業。",
    "beta.txt": "數碼港人工智能超算中心首階段投入服務。\n\n政府推出30億元人工智能資助計劃。",
    "gamma.txt": "河套深港科技創新合作區香港園區的第一批大樓於年底落成。",
    "sub/delta.md": "# 創科\n\n香港科技園公司支持初創企業發展人工智能與生物科技。\n\n創新科技署推動再工業化資助計劃。",
}
QUERIES = ["陳祖恒", "人工智能", "新型工業化", "河套", "再工業化资助", "生物科技初创", "超算中心", "香港",
           "Who chairs the Productivity Council?", "Cyberport supercomputing centre"]  # the last two: the gloss


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    for name, text in DOCS.items():
        write(root, name, text)
    lines = [{"id": f"q{i}", "title": f"題{i}", "text": f"第{i}條：香港人工智能發展與新型工業化的第{i}項措施。"}
             for i in range(6)]
    write(root, "faq.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    return root


def settings_for(tmp_path: Path, name: str, **kw) -> Settings:
    return Settings(index_dir=tmp_path / name, cache_dir=tmp_path / f"cache-{name}", embed_model="test-hashing", **kw)


def snapshot(index_dir: Path, settings: Settings, enc: HashingEncoder) -> dict:
    """What a user sees of an index: rows, hits with their scores, every row's BM25 score."""
    svc = RagService.open(index_dir, settings, encoder=enc)
    idx = svc.index
    out: dict = {
        "paragraphs": [(p, idx.paragraphs[p].text) for p in idx.paragraphs],
        "documents": sorted((d.doc_id, d.title, d.sha256) for d in idx.documents.values()),
        "chunks": list(idx.chunk_ids),
        "vectors": np.asarray(idx.store.vectors_at(np.arange(len(idx.chunk_ids)))),
        "sentences": np.asarray(idx.sentence_table).tolist(),
        "sentence_vectors": np.asarray(idx.sentence_vectors, dtype=np.float32),
        "hits": {},
        "bm25": {},
    }
    for q in QUERIES:
        out["hits"][q] = [(h.para_id, h.score, h.dense_score, h.lexical_score) for h in svc.search(q, k=8)]
        out["bm25"][q] = idx.bm25.scores(svc.normaliser.tokenise(q)) if hasattr(svc, "normaliser") else None
    idx.close()
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a["paragraphs"] == b["paragraphs"]
    assert a["documents"] == b["documents"]
    assert a["chunks"] == b["chunks"]
    assert a["sentences"] == b["sentences"]
    np.testing.assert_array_equal(a["vectors"], b["vectors"])
    np.testing.assert_array_equal(a["sentence_vectors"], b["sentence_vectors"])
    for q in QUERIES:
        ha, hb = a["hits"][q], b["hits"][q]
        assert [h[0] for h in ha] == [h[0] for h in hb], q
        for x, y in zip(ha, hb, strict=True):
            for s, t in zip(x[1:], y[1:], strict=True):
                assert (s is None and t is None) or abs(s - t) <= 1e-6, (q, x, y)
        if a["bm25"][q] is not None:
            np.testing.assert_allclose(a["bm25"][q], b["bm25"][q], rtol=0, atol=1e-6)


def test_bm25_state_scores_equal_bm25s_after_edits():
    """The state's recomputed matrix gives bm25s' own scores, bit for bit, after removals and additions."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(200)]
    toks = [[words[j] for j in rng.integers(0, rng.integers(5, 200), rng.integers(0, 50))] for _ in range(400)]
    state = BM25State.from_tokens(toks[:250])
    keep = np.r_[0:80, 120:250]
    updated = BM25State.concat([state.take(keep), state.with_rows(toks[250:])])
    rows = [*keep.tolist(), *range(250, 400)]
    ids = [str(r) for r in rows]
    inc = BM25Index.from_state(ids, updated)
    ref = BM25Index.build(ids, [toks[r] for r in rows])
    for _ in range(100):
        q = [words[j] for j in rng.integers(0, 200, rng.integers(1, 6))]
        np.testing.assert_array_equal(inc.scores(q), ref.scores(q))


def test_edits_step_by_step_equal_a_fresh_build(tmp_path, corpus):
    enc = HashingEncoder()
    live = settings_for(tmp_path, "live")

    def step(expect_redone: int | None = None, **kw) -> None:
        s = live.model_copy(update=kw) if kw else live
        summary = build_index([corpus], s.index_dir, s, encoder=enc)
        fresh_dir = tmp_path / "fresh"
        shutil.rmtree(fresh_dir, ignore_errors=True)
        fs = s.model_copy(update={"index_dir": fresh_dir})
        build_index([corpus], fresh_dir, fs, full=True, encoder=HashingEncoder())
        assert_same(snapshot(s.index_dir, s, enc), snapshot(fresh_dir, fs, enc))
        if expect_redone is not None:
            assert not summary.rebuilt and summary.documents_redone == expect_redone, summary.lines()
        return summary

    first = step()
    assert first.rebuilt

    write(corpus, "epsilon.txt", "新界北都會區將建設新的創科產業園區，推動香港新型工業化。")
    enc.encoded.clear()
    s = step(expect_redone=1)  # add
    assert s.new_docs == ["epsilon"] and s.files_read == 1
    assert enc.encoded and all("北都會區" in t or "北都会区" in t for t in enc.encoded), enc.encoded

    write(corpus, "beta.txt", "數碼港人工智能超算中心第二階段明年投入服務。\n\n政府推出30億元人工智能資助計劃。")
    s = step(expect_redone=1)  # change
    assert s.changed_docs == ["beta"] and s.files_read == 1

    (corpus / "gamma.txt").unlink()
    s = step(expect_redone=0)  # delete: nothing to chunk, embed or tokenise
    assert s.deleted_docs == ["gamma"] and s.files_read == 0 and s.encoded == 0

    (corpus / "alpha.txt").rename(corpus / "alpha-renamed.txt")
    s = step(expect_redone=1)  # rename: a new doc_id, its vectors come from the cache
    assert s.new_docs == ["alpha-renamed"] and s.deleted_docs == ["alpha"] and s.encoded == 0

    lines = (corpus / "faq.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = json.dumps({"id": "q2", "title": "題2", "text": "第2條改：香港數碼港推出新計劃。"}, ensure_ascii=False)
    del lines[4]
    (corpus / "faq.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    s = step(expect_redone=1)  # one jsonl line changed, one removed: the other lines keep their rows
    assert s.changed_docs == ["q2"] and s.deleted_docs == ["q4"]

    write(corpus, "metadata.json", json.dumps({"beta.txt": {"title": "數碼港超算"}}, ensure_ascii=False))
    s = step(expect_redone=1)  # a new title for beta: all files read again, only beta redone
    assert s.files_read >= 5

    digest = read_manifest(live.index_dir)["gloss"]["glossary"]["digest"]
    write(corpus, "glossary.tsv", "數碼港\tCyberport\n超算中心\tsupercomputing centre\n")
    s = step(expect_redone=0)  # a glossary edit: no document redone, the gloss built again
    assert not s.renewed and read_manifest(live.index_dir)["gloss"]["glossary"]["digest"] != digest
    svc = RagService.open(live.index_dir, live, encoder=enc)
    scores = svc.index.gloss.scores(svc.retriever.gloss_terms(svc.question("Cyberport supercomputing centre")))
    best = list(svc.index.paragraphs)[int(np.argmax(scores))]
    assert best.startswith("beta#") and scores.max() > 0, best  # the new glossary's names are in the gloss
    svc.index.close()

    s = step(chunk_max_chars=80, chunk_overlap_chars=10)  # a setting in the build key: everything is rebuilt
    assert s.rebuilt and s.documents_redone == s.documents


def test_unchanged_corpus_does_nothing(tmp_path, corpus):
    enc = HashingEncoder()
    s = settings_for(tmp_path, "live")
    build_index([corpus], s.index_dir, s, encoder=enc)
    before = sorted(p.name for p in s.index_dir.iterdir())
    manifest = read_manifest(s.index_dir)
    again = build_index([corpus], s.index_dir, s, encoder=enc)
    assert again.up_to_date and again.lines()[0].startswith("index up to date")
    assert sorted(p.name for p in s.index_dir.iterdir()) == before
    assert read_manifest(s.index_dir) == manifest
    # The same bytes under a new mtime: nothing is redone and no data folder written; the
    # manifest's record of the file is renewed, so the next run is a no-op again.
    os.utime(corpus / "beta.txt", ns=(1, 1))
    encoded = len(enc.encoded)
    touched = build_index([corpus], s.index_dir, s, encoder=enc)
    assert not touched.up_to_date and touched.renewed and not touched.rebuilt and touched.documents_redone == 0
    assert "file record renewed" in touched.lines()[0]
    assert touched.files_read == 0 and len(enc.encoded) == encoded
    assert sorted(p.name for p in s.index_dir.iterdir()) == before
    assert read_manifest(s.index_dir)["data"] == manifest["data"]
    assert build_index([corpus], s.index_dir, s, encoder=enc).up_to_date


def test_cli_no_op_loads_no_model_and_writes_nothing(tmp_path, corpus):
    """`rag index` on an unchanged corpus answers from the manifest: no torch, numpy or FAISS import."""
    s = settings_for(tmp_path, "live", embed_passage_dtype="float32")
    build_index([corpus], s.index_dir, s, encoder=HashingEncoder())
    before = sorted(p.name for p in s.index_dir.iterdir())
    env = {**os.environ, "RAG_EMBED_MODEL": "test-hashing", "RAG_CACHE_DIR": str(s.cache_dir),
           "RAG_EMBED_PASSAGE_DTYPE": "float32"}
    code = ("import sys; from rag.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "heavy = sorted(m for m in ('torch', 'numpy', 'faiss', 'bm25s', 'jieba') if m in sys.modules)\n"
            "print('HEAVY', heavy); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code, "index", str(corpus), "--index", str(s.index_dir)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "index up to date" in proc.stdout and "HEAVY []" in proc.stdout, proc.stdout
    assert sorted(p.name for p in s.index_dir.iterdir()) == before
    # A changed file is noticed by the same command (and then needs the model: here the setting
    # names none that loads, so only the decision is checked, through the API).
    write(corpus, "gamma.txt", "河套園區明年啟用。")
    from rag.index.freshness import up_to_date

    assert up_to_date([corpus], s.index_dir, s) is None


def test_hnsw_update_masks_deleted_rows_and_rebuilds_past_the_bound(tmp_path, corpus):
    enc = HashingEncoder()
    s = settings_for(tmp_path, "live", hnsw_threshold=1, hnsw_ef_search=512)
    for i in range(30):
        write(corpus, f"bulk-{i:02d}.txt", f"第{i}篇：香港創新科技發展第{i}項計劃，支持人工智能與製造業。")
    build_index([corpus], s.index_dir, s, encoder=enc)
    (corpus / "gamma.txt").unlink()
    build_index([corpus], s.index_dir, s, encoder=enc)
    m = read_manifest(s.index_dir)
    assert m["store"]["index"] == "hnsw" and m["store"]["masked"] >= 1
    idx = LoadedIndex.open(s.index_dir, settings=s)
    n = len(idx.chunk_ids)
    q = enc.encode(["河套深港科技創新合作區", "人工智能資助計劃"], kind="query")
    scores, rows = idx.store.search_rows(q, n)
    assert ((rows >= 0) & (rows < n)).all()
    ids = {idx.chunk_ids[r] for r in rows.ravel()}
    assert not any(c.startswith("gamma#") for c in ids)
    exact = q @ np.asarray(idx.store.vectors_at(np.arange(n))).T  # a tiny graph at ef 512 is exact
    np.testing.assert_allclose(scores, -np.sort(-exact, axis=1)[:, :n], atol=1e-5)
    idx.close()
    for i in range(12):  # past the masked share: a fresh graph, nothing masked
        (corpus / f"bulk-{i:02d}.txt").unlink()
    build_index([corpus], s.index_dir, s, encoder=enc)
    assert read_manifest(s.index_dir)["store"]["masked"] == 0


def test_old_data_folders_go_once_no_reader_holds_them(tmp_path, corpus):
    enc = HashingEncoder()
    s = settings_for(tmp_path, "live")
    build_index([corpus], s.index_dir, s, encoder=enc)
    held = LoadedIndex.open(s.index_dir, settings=s)  # a server serving the first build
    first = held.manifest["data"]
    for n in range(3):
        write(corpus, "gamma.txt", f"河套園區第{n}次更新。")
        build_index([corpus], s.index_dir, s, encoder=enc)
    folders = {p.name for p in s.index_dir.iterdir() if p.name.startswith("data-")}
    assert first in folders and len(folders) == 3  # live, its predecessor, and the held one
    assert held.paragraphs[held.paragraphs.ids[0]].text  # still readable
    held.close()
    write(corpus, "gamma.txt", "河套園區最後一次更新。")
    build_index([corpus], s.index_dir, s, encoder=enc)
    folders = {p.name for p in s.index_dir.iterdir() if p.name.startswith("data-")}
    assert first not in folders and len(folders) == 2


def test_an_old_format_index_is_rebuilt_and_its_folder_kept_for_its_readers(tmp_path, corpus):
    """A format-2 manifest is refused with the re-index message; `rag index` rebuilds, keeping
    the folder it named (a server of the older version may be serving it)."""
    from rag.errors import IndexStateError
    from rag.index.freshness import MANIFEST

    s = settings_for(tmp_path, "live")
    build_index([corpus], s.index_dir, s, encoder=HashingEncoder())
    path = s.index_dir / MANIFEST
    old = json.loads(path.read_text(encoding="utf-8"))
    old["format_version"] = 2
    path.write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(IndexStateError, match="rag index"):
        RagService.open(s.index_dir, s, encoder=HashingEncoder())
    summary = build_index([corpus], s.index_dir, s, encoder=HashingEncoder())
    assert summary.rebuilt and summary.encoded == 0  # vectors from the embedding cache
    assert (s.index_dir / old["data"]).is_dir()
    assert read_manifest(s.index_dir)["data"] != old["data"]
