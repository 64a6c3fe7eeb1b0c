"""Embeddings cached by content hash in SQLite, so unchanged text is never encoded twice."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rag.errors import ModelError


def text_key(model_id: str, kind: str, text: str) -> bytes:
    return hashlib.sha256(f"{model_id}\x00{kind}\x00{text}".encode()).digest()


class EmbeddingCache:
    """A key → float32 vector table; safe across threads and processes (SQLite WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")
            self._conn.commit()
        except (OSError, sqlite3.Error) as exc:
            raise ModelError(
                f"cannot open the embedding cache {self.path}: {exc}; set RAG_CACHE_DIR to a writable folder"
            ) from exc
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        out: dict[bytes, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                part = list(keys[i : i + 500])
                marks = ",".join("?" * len(part))
                for key, blob in self._conn.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", part):
                    out[bytes(key)] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)",
                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items],
            )
            self._conn.commit()

    def close(self) -> None:
        self._conn.close()


def encode_cached(
    texts: Sequence[str],
    *,
    model_id: str,
    kind: str,
    encode: Callable[[list[str]], np.ndarray],
    cache: EmbeddingCache | None,
    dim: int,
    known: dict[bytes, np.ndarray] | None = None,
    fallback: dict[bytes, np.ndarray] | None = None,
    keys: Sequence[bytes] | None = None,
    flush_every: int = 512,
) -> tuple[np.ndarray, int]:
    """Vectors for ``texts``; returns (vectors, n_encoded).

    Looked up in ``known``, then the cache, then ``fallback`` (approximate vectors, e.g. float16
    copies, used only when the cache has lost the exact ones), else encoded. ``keys`` are the
    texts' :func:`text_key` values when the caller has them already.
    """
    keys = list(keys) if keys is not None else [text_key(model_id, kind, t) for t in texts]
    if len(keys) != len(texts):
        raise ValueError("keys and texts must have the same length")
    found: dict[bytes, np.ndarray] = dict(known or {})
    missing_keys = [k for k in dict.fromkeys(keys) if k not in found]
    if cache is not None and missing_keys:
        found.update(cache.get_many(missing_keys))
    if fallback:
        found.update((k, fallback[k]) for k in missing_keys if k not in found and k in fallback)
    todo: dict[bytes, str] = {}
    for k, t in zip(keys, texts, strict=True):
        if k not in found and k not in todo:
            todo[k] = t
    # Longest first across the whole set, so each flushed part holds texts of similar length
    # and the encoder's batches carry little padding (chunks and sentences differ ~10x).
    todo_items = sorted(todo.items(), key=lambda kv: -len(kv[1].encode("utf-8")))
    for i in range(0, len(todo_items), flush_every):
        part = todo_items[i : i + flush_every]
        vecs = encode([t for _, t in part])
        fresh = [(k, v) for (k, _), v in zip(part, vecs, strict=True)]
        found.update(fresh)
        if cache is not None:
            cache.put_many(fresh)  # flushed as we go: an interrupted build keeps its work
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, k in enumerate(keys):
        out[row] = found[k]
    return out, len(todo_items)
