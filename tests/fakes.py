"""Fast stand-ins for unit tests only (the real model runs in the end-to-end tests)."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence

import numpy as np


class HashingEncoder:
    """Character-bigram hashing into a fixed space, L2-normalised; counts what it encodes."""

    def __init__(self, dim: int = 64, model_id: str = "test-hashing-encoder") -> None:
        self.dim = dim
        self.model_id = model_id
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str], *, kind: str, batch_size: int | None = None,
               show_progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            if kind == "passage":
                self.encoded.append(text)
            t = unicodedata.normalize("NFKC", text).lower()
            grams = [t[i : i + 2] for i in range(max(1, len(t) - 1))]
            for g in grams:
                h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
            if not norm:
                out[row, 0] = 1.0
        return out
