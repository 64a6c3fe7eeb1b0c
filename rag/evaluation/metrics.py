"""Evaluation metrics as pure functions over ranked ids, gold ids and answer records.

Conventions (the same as sentence-transformers' ``InformationRetrievalEvaluator``):

- ``recall_at_k``: the share of a question's gold paragraphs found in its top k, averaged over
  questions. With one gold paragraph it is 1 or 0.
- ``hit_at_k``: 1 when at least one gold paragraph is in the top k ("accuracy@k", success@k).
- ``mrr_at_k``: 1 / rank of the first gold paragraph within the top k, else 0.
- ``ndcg_at_k``: binary relevance, ideal ranking puts every gold paragraph first.

Questions without gold (unanswerable) have no retrieval metrics; callers leave them out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rag.text.normalise import Normaliser
from rag.text.sentences import matching_form

K_VALUES = (1, 5, 10)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def recall_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Share of gold ids among the first k ranked ids."""
    _check_k(k)
    gold_set = set(gold)
    if not gold_set:
        raise ValueError("recall is undefined without gold ids; leave unanswerable questions out")
    return len(gold_set.intersection(ranked[:k])) / len(gold_set)


def hit_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1.0 when any gold id is among the first k ranked ids, else 0.0."""
    _check_k(k)
    gold_set = set(gold)
    return 1.0 if any(pid in gold_set for pid in ranked[:k]) else 0.0


def reciprocal_rank(ranked: Sequence[str], gold: Iterable[str], k: int = 10) -> float:
    """1 / (1-based rank of the first gold id in the top k), 0.0 when none is there."""
    _check_k(k)
    gold_set = set(gold)
    for rank, pid in enumerate(ranked[:k], start=1):
        if pid in gold_set:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], gold: Iterable[str], k: int = 10) -> float:
    """Binary-relevance nDCG: DCG of the ranking over DCG of the ideal ranking, both cut at k."""
    _check_k(k)
    gold_set = set(gold)
    if not gold_set:
        raise ValueError("nDCG is undefined without gold ids")
    seen: set[str] = set()
    dcg = 0.0
    for rank, pid in enumerate(ranked[:k], start=1):
        if pid in gold_set and pid not in seen:  # a repeated id earns nothing the second time
            dcg += 1.0 / math.log2(rank + 1)
            seen.add(pid)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold_set), k) + 1))
    return dcg / ideal


def retrieval_scores(ranked: Sequence[str], gold: Iterable[str]) -> dict[str, float]:
    """All per-question retrieval metrics, keyed as in the reports (``recall@5``, ``mrr@10``...)."""
    gold = list(gold)
    out: dict[str, float] = {}
    for k in K_VALUES:
        out[f"recall@{k}"] = recall_at_k(ranked, gold, k)
    for k in K_VALUES:
        out[f"hit@{k}"] = hit_at_k(ranked, gold, k)
    out["mrr@10"] = reciprocal_rank(ranked, gold, 10)
    out["ndcg@10"] = ndcg_at_k(ranked, gold, 10)
    return out


# ---------------------------------------------------------------------------- answers


def match_key(text: str, normaliser: Normaliser | None = None) -> str:
    """The key under which answer strings are matched: the matching form of ``normaliser`` (the
    index's: NFKC, case-folded, one script; OpenCC t2s without one), as retrieval matches."""
    return matching_form(text, normaliser)


def answer_in_texts(answers: Iterable[str], texts: Iterable[str], normaliser: Normaliser | None = None) -> bool:
    """True when any answer string occurs in any text (script- and width-insensitive)."""
    keys = [match_key(t, normaliser) for t in texts if t]
    return any(match_key(a, normaliser) in key for a in answers if a for key in keys)


def citation_precision(cited: Sequence[str], gold: Iterable[str]) -> float | None:
    """Share of cited paragraph ids that are gold; None when nothing was cited."""
    if not cited:
        return None
    gold_set = set(gold)
    return sum(1 for pid in cited if pid in gold_set) / len(cited)


@dataclass(frozen=True)
class AbstentionCounts:
    """Positive = the system abstained. A true positive is an abstention on an unanswerable."""

    tp: int  # abstained, unanswerable
    fp: int  # abstained, answerable (false abstention)
    fn: int  # answered, unanswerable
    tn: int  # answered, answerable


def abstention_counts(records: Iterable[tuple[bool, bool]]) -> AbstentionCounts:
    """Count over ``(answerable, abstained)`` pairs."""
    tp = fp = fn = tn = 0
    for answerable, abstained in records:
        if abstained and not answerable:
            tp += 1
        elif abstained:
            fp += 1
        elif not answerable:
            fn += 1
        else:
            tn += 1
    return AbstentionCounts(tp, fp, fn, tn)


def abstention_scores(c: AbstentionCounts) -> dict[str, float | None]:
    """Precision and recall of abstaining, and the false-abstention rate on answerables.

    A value is None when its denominator is empty (e.g. no unanswerable in a group).
    """

    def ratio(num: int, den: int) -> float | None:
        return num / den if den else None

    return {
        "abstention_precision": ratio(c.tp, c.tp + c.fp),
        "abstention_recall": ratio(c.tp, c.tp + c.fn),
        "false_abstention_rate": ratio(c.fp, c.fp + c.tn),
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between order statistics."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be 0..100, got {q}")
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``k / n`` (95% with the default ``z``); (0, 1)
    when ``n`` is 0. Better than the normal interval for small samples and rates near 0 or 1."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(values: Sequence[float], *, level: float = 0.95, draws: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean of ``values`` (fixed seed: reproducible)."""
    import numpy as np

    xs = np.asarray(values, dtype=np.float64)
    if xs.size == 0:
        return 0.0, 1.0
    rng = np.random.default_rng(seed)
    means = xs[rng.integers(0, xs.size, size=(draws, xs.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, float | int | None]:
    """Metrics of one group of per-question rows (see ``runner.QueryRecord.to_row``).

    A row has ``answerable``, optional ``retrieval`` (per-question scores), optional ``abstained``,
    ``answer_in_citations`` (an answer string in a cited paragraph), ``answer_in_text`` (one in the
    answer text itself), optional ``answer_in_text_or_value`` (that, or a numeric answer stated by
    value), optional ``answer_by_meaning`` (that, or a local model judged that the answer states the
    gold answer: ``rag.evaluation.meaning``), ``citation_precision`` and ``latency_ms``.
    """
    out: dict[str, float | int | None] = {"n": len(rows)}
    answerable = [r for r in rows if r.get("answerable")]
    out["n_answerable"] = len(answerable)
    out["n_unanswerable"] = len(rows) - len(answerable)
    scored = [s for r in answerable if isinstance(s := r.get("retrieval"), Mapping)]
    if scored:
        for key in scored[0]:
            out[key] = mean(float(s[key]) for s in scored)
    asked = [r for r in rows if r.get("abstained") is not None]
    if asked:
        asked_answerable = [r for r in asked if r.get("answerable")]
        out["answer_in_citations"] = mean(
            1.0 if r.get("answer_in_citations") else 0.0 for r in asked_answerable
        )
        out["answer_in_text"] = mean(1.0 if r.get("answer_in_text") else 0.0 for r in asked_answerable)
        if any("answer_in_text_or_value" in r for r in asked_answerable):  # or a number of it stated by value
            out["answer_in_text_or_value"] = mean(1.0 if r.get("answer_in_text_or_value") else 0.0
                                                  for r in asked_answerable)
        if any("answer_by_meaning" in r for r in asked_answerable):  # or, a local model judged, by meaning
            out["answer_by_meaning"] = mean(1.0 if r.get("answer_by_meaning") else 0.0 for r in asked_answerable)
        out["citation_precision"] = mean(r.get("citation_precision") for r in asked_answerable)
        counts = abstention_counts((bool(r.get("answerable")), bool(r["abstained"])) for r in asked)
        out.update(abstention_scores(counts))
    latencies = [float(r["latency_ms"]) for r in rows if r.get("latency_ms") is not None]
    out["latency_p50_ms"] = percentile(latencies, 50)
    out["latency_p95_ms"] = percentile(latencies, 95)
    judged = [float(r["judge_ms"]) for r in rows if r.get("judge_ms") is not None]
    if judged:  # RAG_LLM=local: the answerability judge's share of the latency
        out["judge_p50_ms"] = percentile(judged, 50)
        out["judge_p95_ms"] = percentile(judged, 95)
    answered = [r for r in rows if r.get("abstained") is False]
    generated = [r for r in answered if r.get("generated")]
    if generated:  # answers a language model wrote, and what their checks did
        out["generated_share"] = len(generated) / len(answered)
        out["removed_sentences"] = sum(int(r.get("removed_sentences") or 0) for r in generated)
        out["repaired_sentences"] = sum(int(r.get("repaired_sentences") or 0) for r in generated)
        english = [r for r in generated if r.get("written_in_english") is not None]
        if english:
            out["english_answers_in_english"] = mean(1.0 if r["written_in_english"] else 0.0 for r in english)
        own = [r for r in generated if r.get("answerable") and r.get("answer_in_own_words") is not None]
        if own:  # the answer string in the model's own sentences, the quoted sources left out
            out["answer_in_own_words"] = mean(1.0 if r["answer_in_own_words"] else 0.0 for r in own)
        gen_ms = [float(r["generate_ms"]) for r in rows if r.get("generate_ms") is not None]
        out["generate_p50_ms"] = percentile(gen_ms, 50)
        out["generate_p95_ms"] = percentile(gen_ms, 95)
        for key in ("first_token", "first_shown"):  # from the question to the model's first token / checked sentence
            got = [float(r[f"{key}_ms"]) for r in generated if r.get(f"{key}_ms") is not None]
            out[f"{key}_p50_ms"] = percentile(got, 50)
            out[f"{key}_p95_ms"] = percentile(got, 95)
        whole = [float(r["latency_ms"]) for r in generated if r.get("latency_ms") is not None]
        out["generated_answer_p50_ms"] = percentile(whole, 50)
        out["generated_answer_p95_ms"] = percentile(whole, 95)
    return out
