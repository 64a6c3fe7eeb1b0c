"""Pure functions that fuse a dense and a lexical ranking into one score per candidate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def rrf(rankings: Sequence[Sequence[str]], k: int = 60) -> dict[str, float]:
    """Reciprocal-rank fusion: sum over rankings of 1 / (k + rank), rank counted from 1."""
    out: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            out[key] = out.get(key, 0.0) + 1.0 / (k + rank)
    return out


def max_normalise(scores: Mapping[str, float]) -> dict[str, float]:
    """Scale non-negative scores by their maximum (all zeros stay zeros)."""
    top = max(scores.values(), default=0.0)
    if top <= 0:
        return {key: 0.0 for key in scores}
    return {key: max(0.0, s) / top for key, s in scores.items()}


def minmax_normalise(scores: Mapping[str, float]) -> dict[str, float]:
    """Map scores linearly onto [0, 1]; a constant list maps to 1.0 (or 0.0 when all are 0)."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi - lo <= 1e-12:
        return {key: (1.0 if hi > 0 else 0.0) for key in scores}
    return {key: (s - lo) / (hi - lo) for key, s in scores.items()}


def convex_fuse(
    dense: Mapping[str, float],
    lexical: Mapping[str, float],
    lexical_weight: float,
    *,
    lexical_norm: str = "max",
) -> dict[str, float]:
    """``(1 - w) * dense + w * normalised lexical`` over the union of candidates.

    Dense scores are cosines (already comparable across queries, kept absolute so the fused
    score can be thresholded); lexical BM25 scores are divided by the best one of the query
    (``"max"``) or min-max scaled (``"minmax"``). A candidate missing from one side scores 0
    there (callers should fill both sides for every candidate when they can).
    """
    if not 0.0 <= lexical_weight <= 1.0:
        raise ValueError(f"lexical_weight must be in [0, 1], got {lexical_weight}")
    norm = {"max": max_normalise, "minmax": minmax_normalise}[lexical_norm]
    lex = norm(lexical)
    keys = set(dense) | set(lex)
    return {
        key: (1.0 - lexical_weight) * dense.get(key, 0.0) + lexical_weight * lex.get(key, 0.0)
        for key in keys
    }


def rank(scores: Mapping[str, float], k: int | None = None) -> list[tuple[str, float]]:
    """Keys by descending score, ties broken by key for determinism."""
    ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return ordered if k is None else ordered[:k]
