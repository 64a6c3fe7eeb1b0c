"""The English gloss of an update takes over known paragraphs and equals a full build's.

Each step edits the corpus, updates one index in place and builds another from scratch, then
compares the two glosses: every row's term counts, the mined pairs and glossary, and the BM25
scores of every term of the vocabulary and of a few English questions. It also checks how
many paragraphs the update glossed: only new texts and the known ones that contain a changed
glossary term.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.index.build import build_index
from rag.index.freshness import MANIFEST
from rag.index.gloss import GLOSS_DIR, GlossIndex, changed_terms
from rag.index.glossrows import ROW_FILES, GlossRows, char_set
from rag.index.manifest import read_manifest, seal_manifest
from rag.service import RagService
from rag.store.bm25state import BM25State
from rag.text.normalise import Normaliser
from tests.fakes import HashingEncoder

NORM = Normaliser("t2s")
DOCS = {
    "alpha.txt": "生產力局主席陳祖恒表示，新質生產力是推動香港發展的重要力量。\n\n"
                 "智能微工廠可以協助中小企提升生產效率。",
    "beta.txt": "數碼港人工智能超算中心首階段投入服務。\n\n政府推出30億元人工智能資助計劃。",
    "gamma.txt": "轄下的香港網絡安全事故協調中心(HKCERT)處理網絡安全事故。",
}
QUESTIONS = ["Who chairs the Productivity Council?", "Cyberport supercomputing centre", "HKCERT incidents",
             "microfactory for small firms", "What does the Innovation Hub do?"]


def write(root: Path, name: str, text: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    for name, text in DOCS.items():
        write(root, name, text)
    lines = [{"id": f"q{i}", "title": f"題{i}", "text": f"第{i}條：香港人工智能發展與新型工業化的第{i}項措施。"}
             for i in range(5)]
    lines.append({"id": "q5", "title": "題5", "text": "創新中心推廣智能微工廠，香港網絡安全事故協調中心提供支援。"})
    write(root, "faq.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    write(root, "glossary.tsv", "數碼港\tCyberport\n")
    return root


def gloss_of(index_dir: Path) -> tuple[GlossIndex, GlossRows | None, dict]:
    manifest = read_manifest(index_dir)
    data = index_dir / manifest["data"]
    return GlossIndex.load(data, mmap=False), GlossRows.load(data / GLOSS_DIR), manifest["gloss"]


def row_counts(state: BM25State) -> list[Counter]:
    return [Counter({state.vocab[t]: c for t, c in zip(state.terms[a:b].tolist(), state.counts[a:b].tolist(),
                                                       strict=True)})
            for a, b in zip(state.indptr[:-1].tolist(), state.indptr[1:].tolist(), strict=True)]


def assert_same_gloss(live_dir: Path, fresh_dir: Path) -> None:
    live, live_rows, live_desc = gloss_of(live_dir)
    fresh, fresh_rows, fresh_desc = gloss_of(fresh_dir)
    assert live_rows is not None and fresh_rows is not None
    assert live_desc == fresh_desc  # rows, dictionary, glossary files, mined pairs in order, digest
    assert row_counts(live_rows.state) == row_counts(fresh_rows.state)
    assert live_rows.pairs == fresh_rows.pairs and live_rows.entries == fresh_rows.entries
    np.testing.assert_array_equal(live_rows.keys, fresh_rows.keys)
    np.testing.assert_array_equal(live_rows.chars, fresh_rows.chars)
    from rag.text.sentences import question_terms

    queries = [[t] for t in fresh_rows.state.compact().vocab] + [question_terms(q) for q in QUESTIONS]
    for q in queries:
        np.testing.assert_array_equal(live.scores(q), fresh.scores(q), err_msg=str(q))


class Steps:
    """One index updated in place, and a full build of the same corpus beside it at each step."""

    def __init__(self, tmp_path: Path, corpus: Path) -> None:
        self.tmp, self.corpus = tmp_path, corpus
        self.settings = Settings(index_dir=tmp_path / "live", cache_dir=tmp_path / "cache", embed_model="test-hashing")
        self.enc = HashingEncoder()

    def update(self):
        summary = build_index([self.corpus], self.settings.index_dir, self.settings, encoder=self.enc)
        fresh = self.tmp / "fresh"
        shutil.rmtree(fresh, ignore_errors=True)
        build_index([self.corpus], fresh, self.settings.model_copy(update={"index_dir": fresh}), full=True,
                    encoder=self.enc)
        assert_same_gloss(self.settings.index_dir, fresh)
        return summary


def test_updates_gloss_only_what_changed_and_equal_a_full_build(tmp_path, corpus):
    steps = Steps(tmp_path, corpus)
    first = steps.update()
    assert first.rebuilt and first.glossed == first.paragraphs == 11

    write(corpus, "beta.txt", "數碼港人工智能超算中心第二階段明年投入服務。\n\n政府推出30億元人工智能資助計劃。")
    s = steps.update()  # change: the glossary is the same, only the new paragraph is glossed
    assert s.changed_docs == ["beta"] and s.glossed == 1, s.lines()
    assert "English gloss: 1 paragraphs glossed, 10 taken over" in "\n".join(s.lines())

    write(corpus, "delta.txt", "創新中心(Innovation Hub)開幕。\n\n由本局建立的智能微工廠(Microfactory)投入運作。")
    s = steps.update()  # add: two pairs mined; the known paragraphs with 創新中心 or 智能微工廠 glossed again
    assert s.new_docs == ["delta"] and s.glossed == 2 + 2, s.lines()  # alpha#p2 and q5
    _, rows, desc = gloss_of(steps.settings.index_dir)
    assert ["智能微工廠", "Microfactory"] in desc["glossary"]["mined"]

    (corpus / "gamma.txt").unlink()
    s = steps.update()  # delete: HKCERT's pair goes, so q5 (which names the centre) is glossed again
    assert s.deleted_docs == ["gamma"] and s.glossed == 1, s.lines()
    assert all(zh != "香港網絡安全事故協調中心" for zh, _ in gloss_of(steps.settings.index_dir)[2]["glossary"]["mined"])

    write(corpus, "glossary.tsv", "數碼港\tCyberport\n超算中心\tsupercomputing centre\n生產力局\tProductivity Council\n")
    s = steps.update()  # a glossary edit: the paragraphs with 超算中心 or 生產力局 (no document redone)
    assert s.documents_redone == 0 and s.glossed == 2, s.lines()

    write(corpus, "glossary.tsv", "超算中心\tcentre, supercomputing\n生產力局\tProductivity Council\n數碼港\tCyberport\n")
    s = steps.update()  # the same English words in another order and lines: nothing to gloss
    assert s.glossed == 0, s.lines()


def test_an_index_without_records_is_glossed_in_full_once(tmp_path, corpus):
    """An index written before the records were kept loads, serves and updates (a full gloss once)."""
    steps = Steps(tmp_path, corpus)
    steps.update()
    index_dir = steps.settings.index_dir
    manifest = read_manifest(index_dir)
    data = index_dir / manifest["data"]
    for name in ROW_FILES:
        (data / GLOSS_DIR / name).unlink()
        del manifest["checksums"][f"{GLOSS_DIR}/{name}"]
    (index_dir / MANIFEST).write_text(json.dumps(seal_manifest(manifest)), encoding="utf-8")
    svc = RagService.open(index_dir, steps.settings, encoder=steps.enc)
    assert svc.search("Cyberport", k=1)[0].para_id.startswith("beta#")
    svc.index.close()

    write(corpus, "beta.txt", "數碼港人工智能超算中心第二階段明年投入服務。\n\n政府推出30億元人工智能資助計劃。")
    s = steps.update()
    assert not s.rebuilt and s.documents_redone == 1 and s.glossed == s.paragraphs, s.lines()
    write(corpus, "beta.txt", "數碼港人工智能超算中心第三階段後年投入服務。\n\n政府推出30億元人工智能資助計劃。")
    assert steps.update().glossed == 1


def test_interleave_equals_take_and_concat():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    toks = [[words[j] for j in rng.integers(0, 60, rng.integers(0, 12))] for _ in range(50)]
    old = BM25State.from_tokens(toks[:30])
    src = np.array([3, -1, 4, 5, -1, -1, 0, 29, -1], dtype=np.int64)
    new = old.with_rows(toks[30:34])
    got = BM25State.interleave(old, src, new)
    fresh = iter(range(4))
    want = BM25State.concat([old.take(np.array([r])) if r >= 0 else new.take(np.array([next(fresh)]))
                             for r in src.tolist()])
    assert row_counts(got) == row_counts(want)
    np.testing.assert_array_equal(got.indptr, want.indptr)
    assert row_counts(old.take(np.arange(5, 12))) == row_counts(old)[5:12]  # one run: sliced
    assert len(BM25State.interleave(old, np.zeros(0, np.int64), old.with_rows([]))) == 0
    with pytest.raises(ValueError, match="rows to fill"):
        BM25State.interleave(old, src, old.with_rows(toks[30:32]))


def test_changed_terms_and_character_sets():
    old = {"數碼港": ["Cyberport"], "超算中心": ["supercomputing centre"], "生產力局": ["HKPC"]}
    new = {"數碼港": ["Cyberport"], "超算中心": ["centre", "supercomputing"], "創新中心": ["Innovation Hub"]}
    assert changed_terms(old, new) == ["創新中心", "生產力局"]  # names reordered: the same gloss
    assert changed_terms(old, old) == []
    texts = [NORM.normalise(t) for t in ("數碼港人工智能超算中心", "生產力局主席", "創新科技中心", "")]
    rows = GlossRows(np.zeros((4, 16), np.uint8), np.stack([char_set(t) for t in texts]), [[]] * 4,
                     BM25State.from_tokens([[]] * 4), {}, {})
    for term in ("超算中心", "生产力局", "创新中心", "数码"):
        mask = rows.may_contain(np.arange(4), [NORM.normalise(term)])
        contains = np.array([NORM.normalise(term) in t for t in texts])
        assert not (contains & ~mask).any(), term  # never a false negative
        assert mask[contains].all()
    assert rows.may_contain(np.arange(4), ["创新中心"]).tolist()[:3] == [False, False, True]
