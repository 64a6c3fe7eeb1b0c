"""``LeanEncoder``: BERT-style sentence-transformers folders run in plain torch.

It reads a folder's ``config.json``, ``model.safetensors`` (memory-mapped) and ``tokenizer.json``
(the Rust ``tokenizers`` library) and never imports transformers or sentence-transformers: a
fresh process embeds its first query 2-3x sooner, short queries take ~30% less time (figures in
benchmarks/README.md). It implements only what plain encoders need: BERT or XLM-R layers with
absolute positions, exact GELU, mean pooling over the attention mask. Any other folder raises ``LeanUnsupported`` (a
``ModelError``) so ``get_encoder`` can use ``SentenceTransformerEncoder`` instead; the vectors of
both backends are the same, so they share ``model_id``, indexes and the embedding cache.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import numpy as np

from rag.errors import ModelError

from .encoder import BatchedEncoder, EncoderOptions, Kind, family_prompts, own_prompts
from .torch_thread import on_torch_thread

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)


MODEL_TYPES = ("bert", "xlm-roberta")
# Tokenizer classes for which transformers 5 tokenizes exactly as the folder's tokenizer.json
# (it uses the file as is, or rebuilds the same WordPiece pipeline). Others (e.g.
# XLMRobertaTokenizer) are rebuilt from transformers' own template, which can differ on odd
# whitespace, so ``auto`` leaves those folders to sentence-transformers.
AUTO_TOKENIZER_CLASSES = (
    "PreTrainedTokenizerFast", "TokenizersBackend", "BertTokenizer", "BertTokenizerFast",
)
_MODULES = ("Transformer", "Pooling", "Normalize")
_ST_ONLY_KEYS = ("query_length", "document_length", "query_expansion", "processing_kwargs")
_TOKENIZE_CHUNK = 1024  # texts tokenised at a time; ids are kept as compact int32 arrays


class LeanUnsupported(ModelError):
    """The folder needs a feature the lean backend does not implement (use sentence-transformers)."""


@dataclass(frozen=True)
class LeanSpec:
    """What the lean backend needs to know about a folder, read from its JSON files only."""

    folder: Path
    model_dir: Path  # the Transformer module's folder: config.json, model.safetensors, tokenizer.json
    model_type: str
    hidden: int
    layers: int
    heads: int
    eps: float
    pad_id: int
    max_seq_length: int
    position_offset: int  # 0 for BERT; padding_idx + 1 for XLM-R, whose positions skip padding
    tokenizer_class: str | None
    prompts: dict[str, str]


def _read_json(path: Path, *, required: bool = True) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise LeanUnsupported(f"{path.parent} has no {path.name}") from None
        return None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path} ({type(exc).__name__}): fix or rebuild the model folder") from exc


def _module_path(folder: Path, modules: Any) -> Path:
    """The Transformer module's folder, after checking the module chain is Transformer -> mean Pooling."""
    if not isinstance(modules, list) or not modules:
        raise LeanUnsupported(f"{folder}/modules.json lists no modules")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules if isinstance(m, dict)]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k not in _MODULES for k in kinds) or len(kinds) > 3:
        raise LeanUnsupported(f"{folder} has modules {kinds}; the lean backend supports Transformer, "
                              "Pooling and Normalize only")
    pooling = _read_json(folder / str(modules[1].get("path", "")) / "config.json")
    mode = pooling.get("pooling_mode")
    if mode is None:  # the older format: one flag per mode, none set means mean
        flags = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
        mode = "mean" if flags in ([], ["pooling_mode_mean_tokens"]) else ",".join(flags)
    if mode not in ("mean", ["mean"]) or not pooling.get("include_prompt", True):
        raise LeanUnsupported(f"{folder} pools with {mode!r} (include_prompt="
                              f"{pooling.get('include_prompt', True)}); the lean backend does plain mean only")
    return folder / str(modules[0].get("path", ""))


def read_spec(folder: str | Path) -> LeanSpec:
    """Check that the lean backend can run ``folder`` and read its shape (JSON files only)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelError(f"embedding model folder {folder} does not exist: fix RAG_EMBED_MODEL")
    model_dir = _module_path(folder, _read_json(folder / "modules.json"))
    cfg = _read_json(model_dir / "config.json")
    sbert = _read_json(model_dir / "sentence_bert_config.json", required=False) or {}
    tok_cfg = _read_json(model_dir / "tokenizer_config.json", required=False) or {}
    st_cfg = _read_json(folder / "config_sentence_transformers.json", required=False) or {}

    model_type = cfg.get("model_type")
    problems = []
    if model_type not in MODEL_TYPES:
        problems.append(f"model_type {model_type!r}")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        problems.append(f"position_embedding_type {cfg.get('position_embedding_type')!r}")
    if cfg.get("hidden_act", "gelu") != "gelu":
        problems.append(f"hidden_act {cfg.get('hidden_act')!r}")
    if cfg.get("is_decoder") or cfg.get("add_cross_attention"):
        problems.append("a decoder")
    if sbert.get("do_lower_case"):
        problems.append("do_lower_case")
    if any(sbert.get(k) for k in _ST_ONLY_KEYS):
        problems.append("per-task lengths or processing options")
    out_name = (sbert.get("modality_config") or {}).get("text", {}).get("method_output_name")
    if out_name not in (None, "last_hidden_state"):
        problems.append(f"output {out_name!r}")
    if tok_cfg.get("truncation_side", "right") != "right":
        problems.append("left truncation")
    for name in ("tokenizer.json", "model.safetensors"):
        if not (model_dir / name).is_file():
            problems.append(f"no {name}")
    if problems:
        raise LeanUnsupported(f"{folder} has {', '.join(problems)}: the lean backend runs plain "
                              f"{'/'.join(MODEL_TYPES)} encoders only")
    try:
        hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        layers, max_pos = int(cfg["num_hidden_layers"]), int(cfg["max_position_embeddings"])
        eps = float(cfg.get("layer_norm_eps", 1e-12))
        pad_id = int(cfg.get("pad_token_id", 1 if model_type == "xlm-roberta" else 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{model_dir}/config.json lacks a valid {exc}: fix or rebuild the model folder") from exc
    if hidden % heads:
        raise ModelError(f"{model_dir}/config.json: hidden_size {hidden} is not a multiple of {heads} heads")
    offset = pad_id + 1 if model_type == "xlm-roberta" else 0
    limit = sbert.get("max_seq_length") or tok_cfg.get("model_max_length") or 512
    max_seq = max(1, min(int(min(limit, 1 << 30)), max_pos - offset))
    return LeanSpec(
        folder=folder, model_dir=model_dir, model_type=str(model_type), hidden=hidden, layers=layers,
        heads=heads, eps=eps, pad_id=pad_id, max_seq_length=max_seq, position_offset=offset,
        tokenizer_class=tok_cfg.get("tokenizer_class"), prompts=st_cfg.get("prompts") or {},
    )


def auto_unsupported(folder: str | Path) -> str | None:
    """Why ``auto`` should not pick the lean backend for ``folder`` (None: it should)."""
    try:
        spec = read_spec(folder)
    except ModelError as exc:
        return str(exc)
    tokenizer_class = spec.tokenizer_class or ("BertTokenizer" if spec.model_type == "bert" else None)
    if tokenizer_class not in AUTO_TOKENIZER_CLASSES:
        return (f"{spec.folder} uses tokenizer class {tokenizer_class!r}, which transformers may rebuild "
                "differently from tokenizer.json")
    return None


# ---------------------------------------------------------------------------------------------
# The model: weights as plain tensors, a functional forward pass
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    qkv_w: torch.Tensor  # query, key and value fused: (3 * hidden, hidden)
    qkv_b: torch.Tensor
    out_w: torch.Tensor
    out_b: torch.Tensor
    ln1_w: torch.Tensor
    ln1_b: torch.Tensor
    up_w: torch.Tensor
    up_b: torch.Tensor
    down_w: torch.Tensor
    down_b: torch.Tensor
    ln2_w: torch.Tensor
    ln2_b: torch.Tensor


@dataclass(frozen=True)
class _Weights:
    word: torch.Tensor
    position: torch.Tensor
    token_type: torch.Tensor  # row 0: single-sequence inputs
    ln_w: torch.Tensor
    ln_b: torch.Tensor
    layers: tuple[_Layer, ...]


def _load_weights(spec: LeanSpec, device: torch.device) -> _Weights:
    """Read ``model.safetensors`` (memory-mapped) into float32 tensors on ``device``."""
    import torch
    from safetensors.torch import load_file

    path = spec.model_dir / "model.safetensors"
    try:
        raw = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for bad files
        raise ModelError(f"cannot read {path} ({type(exc).__name__}): fix or rebuild the model folder") from exc
    anchor = "embeddings.word_embeddings.weight"
    prefixes = [k[: -len(anchor)] for k in raw if k.endswith(anchor)]
    if len(prefixes) != 1 or prefixes[0] not in ("", "bert.", "roberta.", "model.", "0.auto_model."):
        raise LeanUnsupported(f"{path} has no single {anchor} under a known prefix")
    prefix = prefixes[0]

    def get(name: str) -> torch.Tensor:
        try:
            t = raw[prefix + name]
        except KeyError:
            raise LeanUnsupported(f"{path} has no tensor {prefix + name}") from None
        t = t if t.dtype == torch.float32 else t.float()
        return t.to(device) if device.type != "cpu" else t

    def layer(i: int) -> _Layer:
        p = f"encoder.layer.{i}."
        att = p + "attention.self."
        return _Layer(
            qkv_w=torch.cat([get(att + n + ".weight") for n in ("query", "key", "value")]),
            qkv_b=torch.cat([get(att + n + ".bias") for n in ("query", "key", "value")]),
            out_w=get(p + "attention.output.dense.weight"), out_b=get(p + "attention.output.dense.bias"),
            ln1_w=get(p + "attention.output.LayerNorm.weight"),
            ln1_b=get(p + "attention.output.LayerNorm.bias"),
            up_w=get(p + "intermediate.dense.weight"), up_b=get(p + "intermediate.dense.bias"),
            down_w=get(p + "output.dense.weight"), down_b=get(p + "output.dense.bias"),
            ln2_w=get(p + "output.LayerNorm.weight"), ln2_b=get(p + "output.LayerNorm.bias"),
        )

    weights = _Weights(
        word=get(anchor), position=get("embeddings.position_embeddings.weight"),
        token_type=get("embeddings.token_type_embeddings.weight")[0],
        ln_w=get("embeddings.LayerNorm.weight"), ln_b=get("embeddings.LayerNorm.bias"),
        layers=tuple(layer(i) for i in range(spec.layers)),
    )
    if weights.word.shape[1] != spec.hidden or weights.layers[0].qkv_w.shape != (3 * spec.hidden, spec.hidden):
        raise ModelError(f"{path} does not match config.json (hidden_size {spec.hidden}): rebuild the folder")
    return weights


def _forward(spec: LeanSpec, w: _Weights, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean-pooled last hidden states, float32 ``(batch, hidden)``, as BertModel/XLMRobertaModel."""
    import torch
    import torch.nn.functional as F

    batch, length = ids.shape
    hidden, heads = spec.hidden, spec.heads
    if spec.position_offset:  # XLM-R: count non-pad tokens from padding_idx + 1; pads sit at padding_idx
        real = ids.ne(spec.pad_id).long()
        positions = torch.cumsum(real, dim=1) * real + spec.pad_id
        pos = F.embedding(positions, w.position)
    else:
        pos = w.position[:length]
    x = F.embedding(ids, w.word).to(w.position.dtype) + w.token_type + pos  # word rows stay float32
    x = F.layer_norm(x, (hidden,), w.ln_w, w.ln_b, spec.eps)
    padded = not bool(mask.all())
    attn_mask = mask.bool()[:, None, None, :] if padded else None  # True = attend to this key
    for layer in w.layers:
        qkv = F.linear(x, layer.qkv_w, layer.qkv_b).view(batch, length, 3, heads, hidden // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, length, head_dim)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        att = att.transpose(1, 2).reshape(batch, length, hidden)
        x = F.layer_norm(F.linear(att, layer.out_w, layer.out_b) + x, (hidden,), layer.ln1_w, layer.ln1_b, spec.eps)
        up = F.gelu(F.linear(x, layer.up_w, layer.up_b))
        x = F.layer_norm(F.linear(up, layer.down_w, layer.down_b) + x, (hidden,), layer.ln2_w, layer.ln2_b, spec.eps)
    x = x.float()  # pool in float32 whatever the layers ran in
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def _cast(w: _Weights, dtype: torch.dtype) -> _Weights:
    """A copy of the layers in ``dtype`` (~42 MB in bfloat16 for e5-small); the word table is shared."""
    def layer(x: _Layer) -> _Layer:
        return _Layer(**{f.name: getattr(x, f.name).to(dtype) for f in dataclasses.fields(x)})

    return _Weights(
        word=w.word, position=w.position.to(dtype), token_type=w.token_type.to(dtype),
        ln_w=w.ln_w.to(dtype), ln_b=w.ln_b.to(dtype), layers=tuple(layer(x) for x in w.layers),
    )


def _load_tokenizer(spec: LeanSpec) -> Tokenizer:
    from tokenizers import Tokenizer

    path = spec.model_dir / "tokenizer.json"
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust library raises a bare Exception for bad files
        raise ModelError(f"cannot read {path} ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}): "
                         "fix or rebuild the model folder") from exc
    tok.no_padding()
    tok.enable_truncation(spec.max_seq_length)  # counts the special tokens, as transformers does
    return tok


# ---------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------


class LeanEncoder(BatchedEncoder):
    """Float32, L2-normalised vectors from a BERT/XLM-R sentence-transformers folder, in plain torch.

    Same contract, prompts, batching and vectors as ``SentenceTransformerEncoder`` on that folder.
    """

    def __init__(self, model: str | Path, **options: Unpack[EncoderOptions]) -> None:
        prompts, device = self._configure(model, **options)
        self.spec = read_spec(model)
        self.max_seq_length = self.spec.max_seq_length
        self.dim = self.spec.hidden
        if prompts is None:
            prompts = family_prompts(self.spec.folder.name)
        self.prompts = prompts if prompts is not None else own_prompts(self.spec.prompts)
        # The 16 MB tokenizer.json parses in Rust while torch imports here (~1 s saved on start-up).
        loaded: dict[str, Any] = {}
        thread = threading.Thread(target=self._tokenizer_thread, args=(loaded,), name="tokenizer-load",
                                  daemon=True)
        thread.start()
        try:
            import torch

            try:
                self.device = torch.device(device)
            except (RuntimeError, TypeError) as exc:
                raise ModelError(f"unknown torch device {device!r}: fix RAG_EMBED_DEVICE") from exc
            self._weights, self._low_weights = on_torch_thread(self._load_weights)
        finally:
            thread.join()
        if "error" in loaded:
            raise loaded["error"]
        self.tokenizer: Tokenizer = loaded["tokenizer"]

    def _load_weights(self) -> tuple[_Weights, _Weights]:
        """Float32 weights, and a bfloat16 copy when questions or passages use one (else the same)."""
        import torch

        weights = _load_weights(self.spec, self.device)
        low = "bfloat16" in (self.query_dtype, self.passage_dtype)
        return weights, _cast(weights, torch.bfloat16) if low else weights

    def _tokenizer_thread(self, loaded: dict[str, Any]) -> None:
        try:
            loaded["tokenizer"] = _load_tokenizer(self.spec)
        except BaseException as exc:  # re-raised in __init__
            loaded["error"] = exc

    def _prepare(
        self, texts: Sequence[str], prompt: str, kind: Kind
    ) -> tuple[list[int], Callable[[np.ndarray], np.ndarray]]:
        import torch

        ids = self.token_ids([prompt + t for t in texts])
        weights = self._low_weights if self.dtype_for(kind) == "bfloat16" else self._weights

        def run(idx: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                batch_ids, mask = self._pad([ids[i] for i in idx])
                return _forward(self.spec, weights, batch_ids, mask).cpu().numpy()

        return [len(i) for i in ids], run

    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids of each text with special tokens, truncated to ``max_seq_length``."""
        out: list[np.ndarray] = []
        for start in range(0, len(texts), _TOKENIZE_CHUNK):
            encodings = self.tokenizer.encode_batch(list(texts[start : start + _TOKENIZE_CHUNK]))
            out.extend(np.asarray(e.ids, dtype=np.int32) for e in encodings)
        return out

    def _pad(self, rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        length = max(len(r) for r in rows)
        ids = np.full((len(rows), length), self.spec.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)

    def __repr__(self) -> str:
        return (f"LeanEncoder({self.model_id!r}, dim={self.dim}, queries in {self.query_dtype}, "
                f"passages in {self.passage_dtype})")
