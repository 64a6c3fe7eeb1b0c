"""Metrics on cases small enough to compute by hand."""

from __future__ import annotations

import math

import pytest

from rag.evaluation.metrics import (
    AbstentionCounts,
    abstention_counts,
    abstention_scores,
    aggregate,
    answer_in_texts,
    citation_precision,
    hit_at_k,
    mean,
    ndcg_at_k,
    percentile,
    recall_at_k,
    reciprocal_rank,
    retrieval_scores,
)

RANKED = ["a", "b", "c", "d", "e", "f"]


def test_recall_single_gold():
    assert recall_at_k(RANKED, ["a"], 1) == 1.0
    assert recall_at_k(RANKED, ["c"], 1) == 0.0
    assert recall_at_k(RANKED, ["c"], 5) == 1.0
    assert recall_at_k(RANKED, ["z"], 10) == 0.0


def test_recall_counts_the_share_of_gold_found():
    # gold {b, f, z}: top-5 holds only b -> 1/3; top-10 holds b and f -> 2/3
    assert recall_at_k(RANKED, ["b", "f", "z"], 5) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, ["b", "f", "z"], 10) == pytest.approx(2 / 3)


def test_hit_is_any_gold():
    assert hit_at_k(RANKED, ["b", "f", "z"], 5) == 1.0
    assert hit_at_k(RANKED, ["f"], 5) == 0.0


def test_reciprocal_rank():
    assert reciprocal_rank(RANKED, ["c", "e"]) == pytest.approx(1 / 3)
    assert reciprocal_rank(RANKED, ["f"], k=5) == 0.0
    assert reciprocal_rank([], ["a"]) == 0.0


def test_ndcg_by_hand():
    # gold {b, d}: DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k(RANKED, ["b", "d"], 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(RANKED, ["a"], 10) == 1.0
    assert ndcg_at_k(RANKED, ["z"], 10) == 0.0


def test_ndcg_does_not_reward_duplicates():
    assert ndcg_at_k(["a", "a"], ["a", "b"], 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_undefined_without_gold_or_bad_k():
    with pytest.raises(ValueError, match="without gold"):
        recall_at_k(RANKED, [], 5)
    with pytest.raises(ValueError, match="k must be >= 1"):
        hit_at_k(RANKED, ["a"], 0)


def test_retrieval_scores_keys():
    s = retrieval_scores(["x", "a"], ["a"])
    assert s["recall@1"] == 0.0 and s["recall@5"] == 1.0 and s["mrr@10"] == 0.5
    assert set(s) == {"recall@1", "recall@5", "recall@10", "hit@1", "hit@5", "hit@10", "mrr@10", "ndcg@10"}


def test_answer_match_ignores_script_width_and_case():
    assert answer_in_texts(["陳祖恒"], ["生產力局主席陳祖恒表示"])
    assert answer_in_texts(["陳祖恒"], ["生产力局主席陈祖恒表示"])  # display in Simplified
    assert answer_in_texts(["ai"], ["ＡＩ 視覺檢測"])  # full-width, upper case
    assert not answer_in_texts(["畢堅文"], ["陳祖恒"])
    assert not answer_in_texts(["陳祖恒"], [])


def test_citation_precision():
    assert citation_precision(["a", "b", "c", "d"], ["a", "c"]) == 0.5
    assert citation_precision([], ["a"]) is None


def test_abstention_by_hand():
    # (answerable, abstained)
    records = [(False, True), (False, True), (False, False), (True, True), (True, False), (True, False)]
    c = abstention_counts(records)
    assert c == AbstentionCounts(tp=2, fp=1, fn=1, tn=2)
    s = abstention_scores(c)
    assert s["abstention_precision"] == pytest.approx(2 / 3)
    assert s["abstention_recall"] == pytest.approx(2 / 3)
    assert s["false_abstention_rate"] == pytest.approx(1 / 3)


def test_abstention_empty_denominators_are_none():
    s = abstention_scores(AbstentionCounts(0, 0, 0, 3))
    assert s == {"abstention_precision": None, "abstention_recall": None, "false_abstention_rate": 0.0}


def test_percentile_interpolates():
    xs = [10.0, 20.0, 30.0, 40.0]
    assert percentile(xs, 50) == 25.0
    assert percentile(xs, 95) == pytest.approx(38.5)  # pos 2.85: 30 + 0.85 * 10
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(xs, 101)


def test_mean_skips_none():
    assert mean([1.0, None, 0.0]) == 0.5
    assert mean([None]) is None


def test_aggregate_group():
    rows = [
        {"answerable": True, "retrieval": {"recall@5": 1.0}, "abstained": False,
         "answer_in_citations": True, "citation_precision": 0.5, "latency_ms": 10.0},
        {"answerable": True, "retrieval": {"recall@5": 0.0}, "abstained": True,
         "answer_in_citations": False, "citation_precision": None, "latency_ms": 30.0},
        {"answerable": False, "abstained": True, "latency_ms": 20.0},
    ]
    g = aggregate(rows)
    assert g["n"] == 3 and g["n_answerable"] == 2 and g["n_unanswerable"] == 1
    assert g["recall@5"] == 0.5
    assert g["answer_in_citations"] == 0.5
    assert g["citation_precision"] == 0.5
    assert g["abstention_precision"] == 0.5 and g["abstention_recall"] == 1.0
    assert g["false_abstention_rate"] == 0.5
    assert g["latency_p50_ms"] == 20.0
