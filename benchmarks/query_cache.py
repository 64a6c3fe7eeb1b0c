"""Question vectors cached by content hash, for benchmark and tuning runs that ask the same dev
questions many times (a slower embedder makes re-encoding 8,000 questions the cost of a run).

    from query_cache import install; install()      # in a benchmark script, before it opens a service
    python benchmarks/query_cache.py eval --report reports/x ...   # `rag eval` with the cache

The cache is the embedding cache's SQLite table (``<cache_dir>/embeddings.sqlite3``); a question's
key is its text, the model id and the question precision, so a vector is reused only for exactly
the same encoder. The product itself never uses it: a served question is encoded once.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class CachedQueries:
    """An ``Encoder`` that looks questions up in the embedding cache before encoding them."""

    def __init__(self, inner: Any, cache_path: Path) -> None:
        from rag.embedding.cache import EmbeddingCache

        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.cache = EmbeddingCache(cache_path)
        self.space = f"{inner.model_id}@query-{getattr(inner, 'query_dtype', 'float32')}"

    def __getattr__(self, name: str) -> Any:  # passage_space, prompts, dtype_for, ...
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str], *, kind: str, batch_size: int | None = None,
               show_progress: bool = False) -> np.ndarray:
        if kind != "query":
            return self.inner.encode(texts, kind=kind, batch_size=batch_size, show_progress=show_progress)
        from rag.embedding.cache import encode_cached

        vectors, _ = encode_cached(list(texts), model_id=self.space, kind="query", cache=self.cache, dim=self.dim,
                                   encode=lambda part: self.inner.encode(part, kind="query", batch_size=batch_size))
        return vectors


def install() -> None:
    """Every encoder ``rag.embedding.get_encoder`` returns from now on caches its questions."""
    import rag.embedding as embedding
    from rag.config import get_settings

    original = embedding.get_encoder
    wrapped: dict[int, CachedQueries] = {}

    def get_encoder(settings: Any, *args: Any, **kwargs: Any) -> Any:
        enc = original(settings, *args, **kwargs)
        if id(enc) not in wrapped:
            cache = Path(getattr(settings, "cache_dir", get_settings().cache_dir)).expanduser()
            wrapped[id(enc)] = CachedQueries(enc, cache / "embeddings.sqlite3")
        return wrapped[id(enc)]

    embedding.get_encoder = get_encoder


if __name__ == "__main__":
    install()
    from rag.cli import main as cli

    sys.argv = ["rag", *sys.argv[1:]]
    cli()
