"""The relevance model is chosen per embedding model (rag.retrieval.relevance): the index's model
id picks its calibration, and a model nobody calibrated never gets another model's floor."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answer.compose import answer_from_hits
from rag.config import Settings
from rag.index.build import build_index
from rag.modelid import GEMMA_HUB_NAME, GEMMA_ID, MODEL_ID
from rag.profiles import E5_SMALL, GEMMA_300M, UNCALIBRATED_NOTICE
from rag.profiles import profile_for as calibration_for
from rag.question import Question
from rag.retrieval.relevance import features, probability, relevance
from rag.service import RagService
from rag.types import Hit
from tests.fakes import HashingEncoder


@pytest.mark.parametrize(("model_id", "expected"), [
    (MODEL_ID, E5_SMALL),
    ("intfloat/multilingual-e5-small", E5_SMALL),
    (GEMMA_ID, GEMMA_300M),
    (GEMMA_HUB_NAME, GEMMA_300M),  # the hub's name of the same weights
    ("/models/embeddinggemma-300m-cbf5a78393b6", GEMMA_300M),
])
def test_known_models_get_their_own_calibration(model_id: str, expected: object) -> None:
    assert calibration_for(model_id) is expected


def test_the_calibrations_differ_where_the_cosine_scales_differ() -> None:
    question = Question.make("Who chairs the Productivity Council?")
    feats = features(question, "生產力局主席陳祖恒表示。", 0.45)
    assert E5_SMALL.coef is not None and GEMMA_300M.coef is not None
    # A cosine of 0.45 is unrelated text for e5 and a good match for EmbeddingGemma.
    assert probability(feats, E5_SMALL.coef) < 0.01
    assert probability(feats, GEMMA_300M.coef) > probability(feats, E5_SMALL.coef)


def test_an_unknown_model_is_uncalibrated() -> None:
    cal = calibration_for("BAAI/bge-m3")
    assert not cal.calibrated and cal.floor == 0.0 and cal.model == "BAAI/bge-m3"
    assert relevance(Question.make("anything"), "任何段落。", 0.9, cal) is None


def _hit(relevance_value: float | None, score: float) -> Hit:
    return Hit(para_id="d#p1", doc_id="d", text="生產力局主席陳祖恒表示，新質生產力成為關鍵詞。", score=score,
               dense_score=0.3, relevance=relevance_value)


def test_uncalibrated_answers_cite_and_say_why_nothing_was_screened() -> None:
    settings = Settings(min_score=None)
    question = Question.make("Who is the chairman of the Productivity Council?")
    cal = calibration_for("org/unknown-model")
    answer = answer_from_hits(question, [_hit(None, 0.2)], settings, calibration=cal)
    assert not answer.abstained and answer.citations
    notice = [w for w in answer.warnings if w.code == UNCALIBRATED_NOTICE]
    assert notice and "org/unknown-model" in notice[0].text and "RAG_MIN_SCORE" in notice[0].text
    # The same hit under e5's calibration, with a relevance below e5's floor, abstains: the floor
    # is a property of the model, and e5's is not applied to the unknown one.
    e5 = answer_from_hits(question, [_hit(0.1, 0.2)], settings, calibration=E5_SMALL)
    assert e5.abstained and not any(w.code == UNCALIBRATED_NOTICE for w in e5.warnings)


def test_uncalibrated_with_a_floor_screens_on_the_ranking_score() -> None:
    settings = Settings(min_score=0.5)
    question = Question.make("Who is the chairman of the Productivity Council?")
    cal = calibration_for("org/unknown-model")
    assert answer_from_hits(question, [_hit(None, 0.2)], settings, calibration=cal).abstained
    assert not answer_from_hits(question, [_hit(None, 0.7)], settings, calibration=cal).abstained


def test_a_service_over_an_unknown_model_warns_and_carries_no_e5_relevance(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("生產力局主席陳祖恒表示，新質生產力成為兩會的關鍵詞。\n\n創新科技署推動再工業化資助計劃。",
                                  encoding="utf-8")
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embed_model="org/unknown-model")
    enc = HashingEncoder(model_id="org/unknown-model")
    build_index([corpus], settings.index_dir, settings, encoder=enc)
    svc = RagService.open(settings.index_dir, settings, encoder=enc)
    assert not svc.calibration.calibrated
    hits = svc.search("What is the weather on Mars?", k=3)
    assert hits and all(h.relevance is None for h in hits)
    answer = svc.ask("What is the weather on Mars?", k=3)
    assert any(w.code == UNCALIBRATED_NOTICE for w in answer.warnings)


def test_fusion_weights_are_the_models_own_unless_a_setting_replaces_them() -> None:
    from rag.profiles import effective

    unset = Settings()
    # Each model keeps the lexical share tuned for it (EmbeddingGemma's was re-tuned on the dev sets).
    assert effective(GEMMA_300M, unset).lexical_weight == GEMMA_300M.lexical_weight
    assert effective(E5_SMALL, unset).lexical_weight == E5_SMALL.lexical_weight
    assert GEMMA_300M.lexical_weight != E5_SMALL.lexical_weight
    # RAG_LEXICAL_WEIGHT, when set, wins for either model; the other tuned values stay.
    chosen = effective(GEMMA_300M, Settings(lexical_weight=0.35))
    assert chosen.lexical_weight == 0.35
    assert chosen.gloss_weight == GEMMA_300M.gloss_weight and chosen.coef == GEMMA_300M.coef
