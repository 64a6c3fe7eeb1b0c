"""The English gloss channel: normalisation, CC-CEDICT senses, glossaries, mining, index and search."""

from __future__ import annotations

import numpy as np
import pytest

from rag.config import Settings
from rag.errors import IndexStateError, InputError
from rag.index.build import build_index
from rag.index.gloss import (
    Glossary,
    Glosser,
    GlossIndex,
    glossary_files,
    load_senses,
    mine_pairs,
    pick_senses,
    read_glossary,
)
from rag.index.manifest import read_manifest
from rag.service import RagService
from rag.text.english import american, english_terms
from rag.text.normalise import Normaliser
from rag.text.sentences import question_terms
from tests.fakes import HashingEncoder

NORM = Normaliser("t2s")


def test_british_and_american_spellings_give_one_term():
    assert american("organisation") == "organization"
    assert american("centre") == "center" and american("programme") == "program"
    assert american("labour") == "labor" and american("four") == "four"
    assert american("enterprise") == "enterprise" and american("otherwise") == "otherwise"
    assert english_terms("Organisations") == english_terms("organization")
    assert english_terms("the Development Centres") == english_terms("development center")
    assert english_terms("industrialisation") == english_terms("industrialization")


def test_question_terms_drop_question_and_stop_words():
    assert question_terms("Who chairs the Productivity Council?") == ["chair", "product", "council"]
    assert question_terms("What is it?") == []
    assert "2024" in question_terms("What happened in 2024?")


def test_sense_rules():
    senses = ["chairperson", "premier", "chairman"]
    assert pick_senses(senses, "first1") == [("chairperson", 1)]
    assert pick_senses(senses, "first2") == [("chairperson", 1), ("premier", 1)]
    assert [s for s, _ in pick_senses(senses, "all")] == senses
    assert pick_senses(senses, "rank") == [("chairperson", 3), ("premier", 2), ("chairman", 1)]
    with pytest.raises(ValueError, match="first2"):
        pick_senses(senses, "best")


def test_cc_cedict_gloss_of_traditional_and_simplified_text():
    senses = load_senses()
    assert senses is not None and senses.version.startswith("CC-CEDICT")
    glosser = Glosser(NORM, rule="first2")
    trad, simp = glosser.terms("生產力局主席表示"), glosser.terms("生产力局主席表示")
    assert trad == simp
    assert {"product", "chairperson"} <= set(trad)
    assert "taxi" not in glosser.terms("香港的工業")  # 的 is a function word, not 的士


def test_glossary_feeds_the_gloss_with_the_same_normalisation(tmp_path):
    path = tmp_path / "glossary.tsv"
    path.write_text("# comment\n主席\tchairman; chair\n生產力局\tHong Kong Productivity Council\tHKPC\n"
                    "no tab here\n", encoding="utf-8")
    glossary = Glossary()
    assert read_glossary(path, glossary, NORM) == 2
    assert glossary.problems and "no tab here" in glossary.problems[0] and ":4:" in glossary.problems[0]
    glosser = Glosser(NORM, glossary)
    terms = glosser.terms("生产力局主席陈祖恒")  # Simplified text, Traditional glossary
    assert {"chairman", "chair", "hkpc", "council"} <= set(terms)
    assert set(question_terms("Who chairs the HKPC?")) <= set(terms)


def test_unreadable_glossary_and_bad_setting_say_what_to_do(tmp_path):
    bad = tmp_path / "glossary.tsv"
    bad.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="UTF-8"):
        read_glossary(bad, Glossary(), NORM)
    with pytest.raises(InputError, match="RAG_GLOSSARY"):
        glossary_files([], str(tmp_path / "missing.tsv"))
    assert glossary_files([tmp_path], None) == [bad]


def test_mined_pairs():
    texts = [
        "生產力局一直提供物聯網(IoT)網絡安全測試服務。轄下的香港網絡安全事故協調中心(HKCERT)自 2001 年成立。",
        "香港近年有不少本土化的“智能微工廠”(Microfactory)迅速崛起。",
        "世界數碼競爭力全球第7(國際管理發展學院(IMD)2024年世界數碼競爭力排名)",
        "由本局建立的香港工業人工智能及機械人研發中心(FLAIR)開發",
        "副主任馮旭(左)和黎少斌(right)簽署。李家超（中）出席。",
    ]
    pairs = mine_pairs(texts)
    assert ("香港網絡安全事故協調中心", "HKCERT") in pairs
    assert ("智能微工廠", "Microfactory") in pairs
    assert ("國際管理發展學院", "IMD") in pairs
    assert ("物聯網", "IoT") in pairs
    assert ("香港工業人工智能及機械人研發中心", "FLAIR") in pairs
    assert not any(en.lower() in ("left", "right") or zh.endswith("李家超") for zh, en in pairs)


def test_empty_and_unknown_terms_score_zero():
    index = GlossIndex.build([["chairman", "council"], [], ["product"]], {}, {})
    assert index.scores(["nothing"]).tolist() == [0, 0, 0]
    s = index.scores(["chairman"])
    assert s[0] > 0 and s[1] == 0 and s[2] == 0


DOCS = {
    "alpha.txt": "生產力局主席陳祖恒表示，新質生產力是推動香港發展的重要力量。",
    "beta.txt": "數碼港人工智能超算中心首階段投入服務。",
    "gamma.txt": "轄下的香港網絡安全事故協調中心(HKCERT)處理網絡安全事故。",
}


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "glossary.tsv").write_text("數碼港\tCyberport\n", encoding="utf-8")
    return root


@pytest.fixture
def settings(tmp_path):
    return Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embed_model="test-hashing")


def test_index_stores_the_gloss_and_english_questions_use_it(corpus, settings):
    enc = HashingEncoder()
    summary = build_index([corpus], settings.index_dir, settings, encoder=enc)
    assert summary.documents == 3 and not summary.skipped  # glossary.tsv is not a document
    manifest = read_manifest(settings.index_dir)
    gloss = manifest["gloss"]
    assert gloss["sense_rule"] and gloss["stemmer"].startswith("snowball-english")
    assert gloss["dictionary"].startswith("CC-CEDICT") and gloss["rows"] == 3
    assert gloss["glossary"]["files"] == [str(corpus / "glossary.tsv")]
    assert ["香港網絡安全事故協調中心", "HKCERT"] in gloss["glossary"]["mined"]
    assert any(name.startswith("gloss/") for name in manifest["checksums"])
    svc = RagService.open(settings.index_dir, settings, encoder=enc)
    # The hashing encoder knows no English: the gloss alone decides between the paragraphs.
    assert svc.search("Where is Cyberport's supercomputing centre?", k=1)[0].doc_id == "beta"
    assert svc.search("Who is the chairman of the Productivity Council?", k=1)[0].doc_id == "alpha"
    off = RagService.open(settings.index_dir, settings.model_copy(update={"gloss_weight": 0.0}), encoder=enc)
    dense, gloss_on = off.retriever._components, svc.retriever._components
    q = "Where is Cyberport's supercomputing centre?"
    v = enc.encode([q], kind="query")[0]
    assert not dense(off.question(q), v).gloss.any() and gloss_on(svc.question(q), v).gloss.max() > 0
    # Chinese questions keep the Chinese BM25 alone.
    assert not gloss_on(svc.question("數碼港在哪裡？"), v).gloss.any()


def test_mixed_question_uses_both_channels(corpus, settings):
    enc = HashingEncoder()
    build_index([corpus], settings.index_dir, settings, encoder=enc)
    svc = RagService.open(settings.index_dir, settings, encoder=enc)
    q = "Who handles incidents at 網絡安全事故協調中心?"
    c = svc.retriever._components(svc.question(q), enc.encode([q], kind="query")[0])
    assert c.gloss.max() > 0 and c.lexical.max() > 0


def test_glossary_from_the_setting(corpus, settings, tmp_path):
    extra = tmp_path / "more.tsv"
    extra.write_text("陳祖恒\tSunny Chan\n", encoding="utf-8")
    s = settings.model_copy(update={"glossary": str(extra)})
    enc = HashingEncoder()
    build_index([corpus], s.index_dir, s, encoder=enc)
    svc = RagService.open(s.index_dir, s, encoder=enc)
    assert svc.search("What did Sunny Chan say?", k=1)[0].doc_id == "alpha"
    fresh = HashingEncoder()
    with pytest.raises(InputError, match="RAG_GLOSSARY"):
        build_index([corpus], tmp_path / "other", s.model_copy(update={"glossary": str(tmp_path / "nope.tsv")}),
                    encoder=fresh)
    assert fresh.encoded == []  # refused before any encoding
    extra.write_text("陳祖恒\tSunny Chan\nno tab\n", encoding="utf-8")
    summary = build_index([corpus], s.index_dir, s, encoder=enc)
    assert [(k.path, k.reason) for k in summary.skipped] == [
        (f"{extra}:2", "expected 'Chinese term<TAB>English name', got 'no tab'")]


def test_glossaries_in_subfolders_are_read_and_never_indexed(corpus, settings):
    sub = corpus / "people"
    sub.mkdir()
    (sub / "glossary.tsv").write_text("陳祖恒\tSunny Chan\n", encoding="utf-8")
    (corpus / ".hidden").mkdir()
    (corpus / ".hidden" / "glossary.tsv").write_text("數碼港\tNot Read\n", encoding="utf-8")
    enc = HashingEncoder()
    summary = build_index([corpus], settings.index_dir, settings, encoder=enc)
    assert summary.documents == 3 and not summary.skipped
    files = read_manifest(settings.index_dir)["gloss"]["glossary"]["files"]
    assert files == [str(corpus / "glossary.tsv"), str(sub / "glossary.tsv")]


def test_a_gloss_of_another_stemmer_is_refused(corpus, settings):
    import json

    from rag.index.freshness import MANIFEST
    from rag.index.manifest import seal_manifest

    enc = HashingEncoder()
    build_index([corpus], settings.index_dir, settings, encoder=enc)
    manifest = read_manifest(settings.index_dir)
    manifest["gloss"]["stemmer"] = "porter (nltk)"
    (settings.index_dir / MANIFEST).write_text(json.dumps(seal_manifest(manifest)), encoding="utf-8")
    with pytest.raises(IndexStateError, match="rag index"):
        RagService.open(settings.index_dir, settings, encoder=enc)


@pytest.mark.model
def test_real_corpus_glossary_and_mined_names(corpus_service):
    """The default corpus with the real model: its glossary is read, not indexed, and used."""
    index = corpus_service.index
    assert "glossary" not in " ".join(index.documents)
    report = index.gloss.report
    assert any(f.endswith("corpus/glossary.tsv") for f in report["files"]) and report["entries"] > 50
    assert ["香港網絡安全事故協調中心", "HKCERT"] in report["mined"]
    r = corpus_service.retriever
    q = "What does HKCERT do?"
    question = corpus_service.question(q)
    c = r._components(question, r.encode_queries([question])[0])
    best = index.paragraphs.ids[int(c.paragraphs[int(np.argmax(c.gloss))])]
    assert best == "2024-hkpc-apec-sme-forum-agreements#p17"
    hits = corpus_service.search(q, k=3)
    assert "2024-hkpc-apec-sme-forum-agreements#p17" in [h.para_id for h in hits]


def test_an_index_without_a_gloss_is_refused_unless_the_channel_is_off(corpus, settings):
    import json

    from rag.index.freshness import MANIFEST
    from rag.index.manifest import seal_manifest

    enc = HashingEncoder()
    build_index([corpus], settings.index_dir, settings, encoder=enc)
    manifest = read_manifest(settings.index_dir)
    del manifest["gloss"]
    (settings.index_dir / MANIFEST).write_text(json.dumps(seal_manifest(manifest)), encoding="utf-8")
    with pytest.raises(IndexStateError, match="RAG_GLOSS_WEIGHT=0"):
        RagService.open(settings.index_dir, settings, encoder=enc)
    svc = RagService.open(settings.index_dir, settings.model_copy(update={"gloss_weight": 0.0}), encoder=enc)
    assert svc.index.gloss is None and svc.search("Cyberport", k=1)


def test_gloss_bm25_equals_bm25s_over_the_token_lists():
    """The compact build (distinct ids + counts per paragraph) scores exactly as bm25s does."""
    import bm25s

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    docs = [list(rng.choice(words, size=int(rng.integers(1, 30)))) for _ in range(60)]
    ours = GlossIndex.build(iter(docs), {}, {})
    ref = bm25s.BM25(k1=1.2, b=0.75)
    ref.index(docs, show_progress=False)
    for q in (["w1"], ["w2", "w3", "w2"], ["w39", "w0"]):
        assert np.allclose(ours.scores(q), ref.get_scores(q), atol=1e-6)


def test_the_build_key_follows_the_gloss_version():
    """The no-op check (rag/index/compat.py, no heavy imports) keys builds by the gloss's one version number."""
    from rag.index import compat, gloss

    key = compat.build_key(Settings(), passage_dtype="float32")
    assert key["gloss"]["version"] == gloss.GLOSS_VERSION == compat.GLOSS_VERSION
