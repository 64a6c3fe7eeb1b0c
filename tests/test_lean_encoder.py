"""The lean encoder: same vectors, ids, batching and errors as sentence-transformers; backend choice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings, get_settings
from rag.embedding import (
    DEFAULT_MODEL_ID,
    DEFAULT_MODEL_NAME,
    LeanEncoder,
    SentenceTransformerEncoder,
    get_encoder,
    select_backend,
)
from rag.embedding.lean import LeanUnsupported, auto_unsupported, read_spec
from rag.errors import InputError, ModelError
from tests.test_embedding import _LONG_EN, _LONG_ZH, PARITY_TEXTS

ROOT = Path(__file__).resolve().parents[1]

MIXED = [
    *PARITY_TEXTS,  # Traditional, Simplified, English, mixed, full-width, whitespace, short
    "",
    "港",
    "a",
    _LONG_ZH * 3,  # far beyond 512 tokens: truncated
    (_LONG_EN * 6) + _LONG_ZH,
]


def _assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    cos = (a * b).sum(axis=1)
    assert cos.min() >= 0.99999, cos.round(6)
    assert np.abs(a - b).max() <= 1e-4


def _copy_config(src: Path, dest: Path) -> Path:
    """A model folder with ``src``'s JSON files and links to its weights and tokenizer."""
    dest.mkdir(parents=True)
    for path in src.rglob("*"):
        target = dest / path.relative_to(src)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        elif path.suffix == ".json" and path.name != "tokenizer.json":
            shutil.copy(path, target)
        else:
            target.symlink_to(path)
    return dest


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def default_folder(encoder) -> Path:
    return Path(encoder.name)


# ---------------------------------------------------------------------------------------------
# The default model: parity with sentence-transformers
# ---------------------------------------------------------------------------------------------


@pytest.mark.model
def test_default_backend_is_lean_with_the_same_model_id(encoder, st_encoder):
    if os.environ.get("RAG_EMBED_BACKEND", "auto") == "auto":
        assert isinstance(encoder, LeanEncoder)
    assert isinstance(st_encoder, SentenceTransformerEncoder)
    lean = get_encoder(get_settings(), backend="lean")
    assert isinstance(lean, LeanEncoder) and get_encoder(get_settings(), backend="lean") is lean
    assert lean.model_id == st_encoder.model_id == DEFAULT_MODEL_ID  # indexes and caches stay valid
    for attr in ("dim", "name", "prompts", "batch_size", "max_seq_length", "max_tokens_per_batch"):
        assert getattr(lean, attr) == getattr(st_encoder, attr), attr


@pytest.mark.model
@pytest.mark.parametrize("kind", ["query", "passage"])
def test_vectors_match_sentence_transformers(st_encoder, kind):
    lean = get_encoder(get_settings(), backend="lean", query_dtype="float32", passage_dtype="float32")
    _assert_same(lean.encode(MIXED, kind=kind, batch_size=8), st_encoder.encode(MIXED, kind=kind, batch_size=8))


@pytest.mark.model
@pytest.mark.parametrize("kind", ["query", "passage"])
def test_token_ids_match_sentence_transformers(st_encoder, kind):
    lean = get_encoder(get_settings(), backend="lean")
    prompt = lean.prompts[0] if kind == "query" else lean.prompts[1]
    texts = [prompt + t for t in MIXED]
    theirs = st_encoder._model.tokenizer(texts, truncation=True, max_length=512)["input_ids"]
    ours = lean.token_ids(texts)
    assert [r.tolist() for r in ours] == theirs
    assert max(len(r) for r in ours) == 512  # the long ones are truncated, </s> kept
    assert ours[-1][-1] == theirs[-1][-1] == 2


@pytest.mark.model
def test_batch_size_does_not_change_vectors():
    """In float32, batching (padding) moves no vector by more than rounding."""
    lean = get_encoder(get_settings(), backend="lean", passage_dtype="float32")
    texts = MIXED[:6] + MIXED[-4:]
    one_by_one = lean.encode(texts, kind="passage", batch_size=1)
    for bs in (2, 3, 64):
        np.testing.assert_allclose(lean.encode(texts, kind="passage", batch_size=bs), one_by_one, atol=2e-6)
    # order is restored after sorting by length; each row is a unit vector
    np.testing.assert_allclose(lean.encode([texts[3]], kind="passage")[0], one_by_one[3], atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(one_by_one, axis=1), 1.0, atol=1e-5)


@pytest.mark.model
def test_batch_size_moves_bfloat16_vectors_only_by_its_rounding():
    """bfloat16 sums in another order for another padded length: vectors move by its rounding
    (the cache keeps the first vector of a text, so an index does not depend on batching)."""
    lean = get_encoder(get_settings(), backend="lean", passage_dtype="bfloat16")
    texts = MIXED[:6] + MIXED[-4:]
    one_by_one = lean.encode(texts, kind="passage", batch_size=1)
    for bs in (2, 3, 64):
        cos = (lean.encode(texts, kind="passage", batch_size=bs) * one_by_one).sum(axis=1)
        assert cos.min() >= 0.9995, (bs, cos.round(6))
    np.testing.assert_allclose(np.linalg.norm(one_by_one, axis=1), 1.0, atol=1e-5)


@pytest.mark.model
def test_validation_errors_match(st_encoder):
    lean = get_encoder(get_settings(), backend="lean")
    bad_calls = [
        ({"texts": ["x"], "kind": "document"}),
        ({"texts": "one string", "kind": "query"}),
        ({"texts": ["x"], "kind": "query", "batch_size": -1}),
        ({"texts": ["x", None], "kind": "query"}),
        ({"texts": ["x", 3], "kind": "passage"}),
    ]
    for call in bad_calls:
        errors = []
        for enc in (lean, st_encoder):
            with pytest.raises(InputError) as info:
                enc.encode(**call)
            errors.append(str(info.value))
        assert errors[0] == errors[1] and "\n" not in errors[0], errors
    for cls in (LeanEncoder, SentenceTransformerEncoder):
        with pytest.raises(InputError, match="batch_size must be >= 1, got 0"):
            cls("anything", batch_size=0)
        with pytest.raises(ModelError, match="does not exist: fix RAG_EMBED_MODEL"):
            cls("./no/such/model-folder")
    empty = lean.encode([], kind="query")
    assert empty.shape == (0, 384) and empty.dtype == np.float32


@pytest.mark.model
def test_default_model_does_not_import_transformers(encoder):
    """A fresh process: `get_encoder` of the default model loads neither library."""
    code = textwrap.dedent("""
        import sys
        from rag.config import get_settings
        from rag.embedding import get_encoder
        enc = get_encoder(get_settings())
        enc.encode(["新型工業化？"], kind="query")
        print(type(enc).__name__, sorted(m for m in ("transformers", "sentence_transformers") if m in sys.modules))
    """)
    env = {**os.environ, "RAG_EMBED_BACKEND": "auto", "PYTHONPATH": str(ROOT)}
    env.pop("RAG_EMBED_MODEL", None)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "LeanEncoder []"


# ---------------------------------------------------------------------------------------------
# Backend choice and unsupported folders (JSON only: no weights are loaded)
# ---------------------------------------------------------------------------------------------


def test_select_backend_for_hub_names_and_bad_values():
    assert select_backend("intfloat/multilingual-e5-base", "auto", None) == "sentence-transformers"
    assert select_backend("BAAI/bge-m3", "sentence-transformers", None) == "sentence-transformers"
    with pytest.raises(ModelError, match="RAG_EMBED_BACKEND=sentence-transformers"):
        select_backend("intfloat/multilingual-e5-base", "lean", None)
    with pytest.raises(InputError, match="fix RAG_EMBED_BACKEND"):
        select_backend("x", "onnx", None)


def test_backend_setting(monkeypatch):
    assert Settings().embed_backend == "auto"
    monkeypatch.setenv("RAG_EMBED_BACKEND", "sentence-transformers")
    assert Settings().embed_backend == "sentence-transformers"
    monkeypatch.setenv("RAG_EMBED_BACKEND", "fast")
    with pytest.raises(ValueError, match="embed_backend"):
        Settings()


def test_query_dtype_setting_and_resolution(monkeypatch):
    from rag.embedding import encoder as enc_mod

    assert Settings().embed_query_dtype == "auto"
    monkeypatch.setenv("RAG_EMBED_QUERY_DTYPE", "int4")
    with pytest.raises(ValueError, match="embed_query_dtype"):
        Settings()
    with pytest.raises(InputError, match="fix RAG_EMBED_QUERY_DTYPE"):
        enc_mod.resolve_query_dtype("half", "cpu")
    monkeypatch.setattr(enc_mod, "native_bfloat16", lambda: False)
    assert enc_mod.resolve_query_dtype("auto", "cpu") == "float32"  # emulated bfloat16 would gain nothing
    assert enc_mod.resolve_query_dtype("bfloat16", "cpu") == "bfloat16"  # asked for: honoured
    monkeypatch.setattr(enc_mod, "native_bfloat16", lambda: True)
    assert enc_mod.resolve_query_dtype("auto", "cpu") == "bfloat16"
    assert enc_mod.resolve_query_dtype("auto", "cuda") == "float32"
    assert enc_mod.resolve_query_dtype("float32", "cpu") == "float32"


def test_native_bfloat16_reads_this_cpu():
    flags = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    from rag.embedding.encoder import native_bfloat16

    assert native_bfloat16() == any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


@pytest.mark.model
@pytest.mark.parametrize("backend", ["lean", "sentence-transformers"])
def test_bfloat16_questions_stay_next_to_float32_ones(backend, st_encoder):
    """bfloat16 changes question vectors by a cosine of ~3e-5, passages not at all.

    Passages are pinned to float32: with ``auto`` a CPU with native bfloat16 encodes them in
    bfloat16 too, and the two encoders would then load the weights differently."""
    full = get_encoder(get_settings(), backend=backend, query_dtype="float32", passage_dtype="float32")
    low = get_encoder(get_settings(), backend=backend, query_dtype="bfloat16", passage_dtype="float32")
    assert low is not full and low.query_dtype == "bfloat16" and full.query_dtype == "float32"
    assert "queries in bfloat16" in repr(low)
    questions = [t for t in MIXED if len(t) < 200]
    a, b = full.encode(questions, kind="query"), low.encode(questions, kind="query")
    assert b.dtype == np.float32 and b.shape == a.shape
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(axis=1)
    assert cos.min() >= 0.999, cos.round(6)
    assert cos.min() < 0.9999995  # really computed in a lower precision, not the float32 path
    np.testing.assert_array_equal(low.encode(MIXED, kind="passage"), full.encode(MIXED, kind="passage"))
    # the nearest passage of every question is the same either way
    passages = st_encoder.encode(MIXED, kind="passage")
    assert ((a @ passages.T).argmax(axis=1) == (b @ passages.T).argmax(axis=1)).all()


def test_passage_dtype_setting_and_resolution(monkeypatch):
    from rag.embedding import encoder as enc_mod

    assert Settings().embed_passage_dtype == "auto"
    monkeypatch.setenv("RAG_EMBED_PASSAGE_DTYPE", "int8")
    with pytest.raises(ValueError, match="embed_passage_dtype"):
        Settings()
    with pytest.raises(InputError, match="fix RAG_EMBED_PASSAGE_DTYPE"):
        enc_mod.resolve_passage_dtype("half", "cpu")
    monkeypatch.setattr(enc_mod, "native_bfloat16", lambda: False)
    assert enc_mod.resolve_passage_dtype("auto", "cpu") == "float32"
    monkeypatch.setattr(enc_mod, "native_bfloat16", lambda: True)
    assert enc_mod.resolve_passage_dtype("auto", "cpu") == "bfloat16"
    assert enc_mod.resolve_passage_dtype("float32", "cpu") == "float32"
    # the cache keeps the two precisions apart; float32 keeps the bare model id
    assert enc_mod.vector_space("m", "float32") == "m" and enc_mod.vector_space("m", "bfloat16") == "m@bfloat16"


@pytest.mark.model
@pytest.mark.parametrize("backend", ["lean", "sentence-transformers"])
def test_bfloat16_passages_stay_next_to_float32_ones(backend, st_encoder):
    """bfloat16 passages move by a cosine of ~1e-4 at most; questions are not affected."""
    full = get_encoder(get_settings(), backend=backend, query_dtype="float32", passage_dtype="float32")
    low = get_encoder(get_settings(), backend=backend, query_dtype="float32", passage_dtype="bfloat16")
    assert low is not full and low.passage_dtype == "bfloat16" and "passages in bfloat16" in repr(low)
    assert low.passage_space == f"{low.model_id}@bfloat16" and full.passage_space == full.model_id
    a, b = full.encode(MIXED, kind="passage"), low.encode(MIXED, kind="passage")
    assert b.dtype == np.float32 and b.shape == a.shape
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(axis=1)
    assert cos.min() >= 0.999, cos.round(6)
    assert cos.min() < 0.9999995  # really computed in bfloat16
    np.testing.assert_array_equal(low.encode(MIXED, kind="query"), full.encode(MIXED, kind="query"))
    questions = [t for t in MIXED if len(t) < 200]
    q = st_encoder.encode(questions, kind="query")
    assert ((q @ a.T).argmax(axis=1) == (q @ b.T).argmax(axis=1)).all()


@pytest.mark.model
def test_select_backend_for_the_default_folder(default_folder):
    assert select_backend(DEFAULT_MODEL_NAME, "auto", default_folder) == "lean"
    assert select_backend(DEFAULT_MODEL_NAME, "lean", default_folder) == "lean"
    assert select_backend(DEFAULT_MODEL_NAME, "sentence-transformers", default_folder) == "sentence-transformers"
    spec = read_spec(default_folder)
    assert (spec.model_type, spec.hidden, spec.layers, spec.heads, spec.max_seq_length) == ("bert", 384, 12, 12, 512)


@pytest.mark.model
@pytest.mark.parametrize(
    ("file", "changes", "says"),
    [
        ("config.json", {"model_type": "t5"}, "model_type 't5'"),
        ("config.json", {"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ("config.json", {"hidden_act": "gelu_new"}, "hidden_act"),
        ("1_Pooling/config.json", {"pooling_mode": "cls"}, "pools with 'cls'"),
        ("1_Pooling/config.json", {"include_prompt": False}, "include_prompt=False"),
        ("sentence_bert_config.json", {"do_lower_case": True}, "do_lower_case"),
    ],
)
def test_unsupported_config_is_a_model_error(default_folder, tmp_path, file, changes, says):
    folder = _copy_config(default_folder, tmp_path / "model")
    _edit_json(folder / file, **changes)
    with pytest.raises(LeanUnsupported, match=says) as info:
        read_spec(folder)
    assert isinstance(info.value, ModelError) and "\n" not in str(info.value)
    assert select_backend(str(folder), "auto", folder) == "sentence-transformers"
    with pytest.raises(ModelError, match=says):
        select_backend(str(folder), "lean", folder)
    with pytest.raises(ModelError, match=says):
        get_encoder(get_settings(), str(folder), backend="lean")


@pytest.mark.model
def test_extra_modules_and_tokenizer_classes(default_folder, tmp_path):
    folder = _copy_config(default_folder, tmp_path / "dense")
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(LeanUnsupported, match="Dense"):
        read_spec(folder)
    # A tokenizer class that transformers rebuilds from its own template: lean only on request.
    folder = _copy_config(default_folder, tmp_path / "xlmr-tokenizer")
    _edit_json(folder / "tokenizer_config.json", tokenizer_class="XLMRobertaTokenizer")
    assert "XLMRobertaTokenizer" in (auto_unsupported(folder) or "")
    assert select_backend(str(folder), "auto", folder) == "sentence-transformers"
    assert select_backend(str(folder), "lean", folder) == "lean"


@pytest.mark.model
def test_broken_files_are_one_line_model_errors(default_folder, tmp_path):
    folder = _copy_config(default_folder, tmp_path / "bad-weights")
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot read .*model.safetensors") as info:
        LeanEncoder(folder)
    assert "\n" not in str(info.value)
    folder = _copy_config(default_folder, tmp_path / "bad-tokenizer")
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match="cannot read .*tokenizer.json") as info:
        LeanEncoder(folder)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Other folders: tiny random BERT (WordPiece, lower-casing) and XLM-R (offset positions)
# ---------------------------------------------------------------------------------------------


def build_tiny_xlmr(folder: Path) -> Path:
    """A sentence-transformers folder: random 2-layer XLM-R + a character Unigram tokenizer."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    from tests.test_reliability_index import HAN

    torch.manual_seed(1)
    chars = sorted(set(HAN + "，。！？abcdefghijklmnopqrstuvwxyz"))
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = [(s, 0.0) for s in specials] + [("▁", -2.0)] + [(c, -3.0) for c in chars]
    vocab += [("▁" + c, -3.5) for c in chars] + [("<mask>", 0.0)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")
    config = XLMRobertaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=64, max_position_embeddings=66, pad_token_id=1, bos_token_id=0,
                              eos_token_id=2, type_vocab_size=1)
    raw = folder / "raw"
    XLMRobertaModel(config).save_pretrained(raw)
    fast.save_pretrained(raw)
    out = folder / "tiny-xlmr-e5"
    word = Transformer(str(raw), max_seq_length=64)
    SentenceTransformer(modules=[word, Pooling(32, "mean")], device="cpu").save(str(out))
    shutil.rmtree(raw)
    return out


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    from tests.test_reliability_index import build_tiny_model

    return {
        "bert": build_tiny_model(tmp_path_factory.mktemp("tiny-bert")),
        "xlm-roberta": build_tiny_xlmr(tmp_path_factory.mktemp("tiny-xlmr")),
    }


@pytest.mark.parametrize("model_type", ["bert", "xlm-roberta"])
def test_tiny_models_match_sentence_transformers(tiny_folders, model_type):
    folder = tiny_folders[model_type]
    assert read_spec(folder).model_type == model_type
    assert select_backend(str(folder), "auto", folder) == "lean"
    lean, st = LeanEncoder(folder), SentenceTransformerEncoder(folder)
    assert (lean.model_id, lean.dim, lean.prompts, lean.max_seq_length) == (
        st.model_id, st.dim, st.prompts, st.max_seq_length)
    texts = ["香港新型工業化", "SMART Production", "", "港", "生產力" * 60, "abc 香港 xyz。" * 3]
    for kind in ("query", "passage"):
        _assert_same(lean.encode(texts, kind=kind, batch_size=4), st.encode(texts, kind=kind, batch_size=4))
    prompt = lean.prompts[1]
    theirs = st._model.tokenizer([prompt + t for t in texts], truncation=True,
                                 max_length=st.max_seq_length)["input_ids"]
    assert [r.tolist() for r in lean.token_ids([prompt + t for t in texts])] == theirs
