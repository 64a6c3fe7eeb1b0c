"""Pure functions that fuse per-candidate channel scores into one ranking (what retrieval runs).

Each channel comes as an array with one score per candidate paragraph: ``dense`` (cosines,
kept absolute so the fused score can be compared across questions), ``lexical`` (BM25 of the
question's tokens) and ``gloss`` (BM25 of its English words against the English gloss); the
two BM25 channels are divided by their best candidate's score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fuse(
    dense: np.ndarray,
    lexical: np.ndarray,
    lexical_weight: float,
    gloss: np.ndarray | None = None,
    gloss_weight: float = 0.0,
) -> np.ndarray:
    """``(1 - w) * dense + w * lexical / max lexical + g * gloss / max gloss``.

    A BM25 channel whose best score is 0 (nothing matched) adds nothing; negative BM25 scores
    count as 0. The operations (and their order) are the product's: scores are reproducible
    to the last bit, so the ranking of near-ties never depends on how they were computed.
    """
    if not 0.0 <= lexical_weight <= 1.0:
        raise ValueError(f"lexical_weight must be in [0, 1], got {lexical_weight}")
    top = float(lexical.max()) if len(lexical) else 0.0
    fused = (1.0 - lexical_weight) * dense + (lexical_weight * np.maximum(lexical, 0.0) / top if top > 0 else 0.0)
    if gloss is not None:
        g_top = float(gloss.max()) if len(gloss) else 0.0
        if g_top > 0:
            fused = fused + gloss_weight * gloss / g_top
    return np.asarray(fused)


def top_k(scores: np.ndarray, keys: Sequence[str], k: int) -> list[int]:
    """Positions of the ``k`` best scores, best first; ties broken by ``keys`` (determinism).

    Every candidate scoring at least the ``k``-th best takes part in the tie-break, so which
    of several equal scores makes the cut never depends on their order in the array.
    """
    pool = np.arange(len(scores))
    if len(scores) > k > 0:
        pool = np.flatnonzero(scores >= -np.partition(-scores, k - 1)[k - 1])
    return sorted(pool.tolist(), key=lambda i: (-scores[i], keys[i]))[:k]
