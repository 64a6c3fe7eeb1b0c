"""Crash safety of the index: real `rag index` processes killed with SIGKILL, tampering, the lock.

How the server sees a rebuild: `rag serve` loads the index at start-up (in its lifespan), and
opens it again when its ``manifest.json`` changes (``rag.collections``). A build writes a new
``data-*`` folder and then replaces ``manifest.json`` with one atomic rename, so whenever the
server opens the index it reads either the old manifest or the new one, each naming a
complete, checksummed data folder: it can never load a half-swapped index. The previous data
folder is kept by the next build, so a server started just before a swap keeps working too.

The builds here are real subprocesses (``python -m rag.cli index``) with a real
sentence-transformers model: a tiny randomly initialised BERT built in the test and saved with
``save_pretrained`` (no network), so a build of a few hundred paragraphs takes seconds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rag.config import Settings
from rag.errors import IndexStateError
from rag.index.freshness import MANIFEST
from rag.index.loaded import LoadedIndex
from rag.index.manifest import read_manifest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HAN = "香港新型工業化生產力科技創新發展先進製造業人工智能數據中心政府資助計劃企業人才研究大學基礎建設金融貿易物流醫療"


def build_tiny_model(folder: Path) -> Path:
    """A real sentence-transformers folder: random 1-layer BERT + a character WordPiece vocab."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    chars = [chr(c) for c in range(0x21, 0x7F)] + sorted(set(HAN + "，。！？；：「」"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    raw = folder / "raw"
    raw.mkdir(parents=True)
    (raw / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(raw / "vocab.txt"), do_lower_case=True)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256)
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    word = Transformer(str(raw), max_seq_length=256)
    out = folder / "tiny-st"
    SentenceTransformer(modules=[word, Pooling(32, "mean")], device="cpu").save(str(out))
    shutil.rmtree(raw)
    return out


def write_corpus(folder: Path, seed: int, files: int = 20, paras: int = 15) -> Path:
    """``files * paras`` short generated paragraphs (default 300), different for each seed."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.txt"):
        old.unlink()
    for f in range(files):
        body = []
        for p in range(paras):
            words = "".join(rng.choice(HAN) for _ in range(rng.randint(30, 90)))
            body.append(f"第{seed}版第{f}篇第{p}段：{words}。")
        (folder / f"doc-{f:03d}.txt").write_text("\n\n".join(body), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model):
    from rag.embedding import SentenceTransformerEncoder

    return SentenceTransformerEncoder(tiny_model)


def env_for(model: Path, cache: Path) -> dict[str, str]:
    return {**os.environ, "RAG_EMBED_MODEL": str(model), "RAG_CACHE_DIR": str(cache),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def index_cmd(corpus: Path, index_dir: Path) -> list[str]:
    return [sys.executable, "-m", "rag.cli", "index", str(corpus), "--index", str(index_dir), "-q"]


def run_index(corpus: Path, index_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(index_cmd(corpus, index_dir), env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def settings_for(model: Path, index_dir: Path, cache: Path) -> Settings:
    return Settings(index_dir=index_dir, cache_dir=cache, embed_model=str(model))


def assert_answers(index_dir: Path, settings: Settings, encoder, want_marker: str) -> dict:
    """The index loads with every checksum verified and answers a search from the expected build."""
    from rag.service import RagService

    LoadedIndex.open(index_dir, verify="stamped")
    svc = RagService.open(index_dir, settings, encoder=encoder)
    hits = svc.search("香港新型工業化", k=5)
    assert hits, "the index answered nothing"
    assert all(h.text.startswith(want_marker) for h in hits), [h.text[:12] for h in hits]
    return svc.index.manifest


# -- kill points -----------------------------------------------------------------------------------
# A build run with _RAG_TEST_BUILD_STAGES appends each stage it reaches to that file, and stops
# itself (SIGSTOP) at the stage named by _RAG_TEST_BUILD_PAUSE (``_stage`` in rag/index/build.py):
# the test kills it there, whatever the machine's speed, and fails if the stage never comes.

STAGES = ("locked", "read", "encoding", "writing data", "manifest tmp", "swapped")
BEFORE_SWAP = STAGES[:-1]


def start_paused_at(cmd: list[str], env: dict[str, str], stage: str, work: Path, **popen: Any) -> subprocess.Popen:
    """Start ``cmd`` with the build's stage hook set to stop it at ``stage``."""
    assert stage in STAGES, stage
    log = work / "stages.txt"
    log.unlink(missing_ok=True)
    env = {**env, "_RAG_TEST_BUILD_STAGES": str(log), "_RAG_TEST_BUILD_PAUSE": stage}
    return subprocess.Popen(cmd, env=env, cwd=ROOT, **popen)


def wait_until_paused(proc: subprocess.Popen, stage: str, work: Path, timeout: float = 240) -> list[str]:
    """Block until ``proc`` stops itself at ``stage`` (no polling: waitpid reports the stop); the
    stages it reached. Fails, naming what it reached, when it ends or hangs before that stage."""
    watchdog = threading.Timer(timeout, proc.kill)  # a hung build is killed, and fails below
    watchdog.start()
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
    finally:
        watchdog.cancel()
    log = work / "stages.txt"
    reached = [ln for ln in (log.read_text(encoding="utf-8").splitlines() if log.exists() else []) if ln]
    if not os.WIFSTOPPED(status):
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        err = (work / "build.stderr").read_text(encoding="utf-8", errors="replace")[-3000:] \
            if (work / "build.stderr").exists() else ""
        pytest.fail(f"the build never reached stage {stage!r}: it reached {reached} and ended with "
                    f"{proc.returncode} (or hung past {timeout}s)\n{err}")
    assert reached and reached[-1] == stage, (stage, reached)
    return reached


def kill_at(cmd: list[str], env: dict[str, str], stage: str, work: Path) -> list[str]:
    """Run ``cmd`` (a `rag index`) until it reaches ``stage``, SIGKILL it there; the stages it reached."""
    with open(work / "build.stderr", "wb") as err:
        proc = start_paused_at(cmd, env, stage, work, stdout=subprocess.DEVNULL, stderr=err)
    try:
        reached = wait_until_paused(proc, stage, work)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    return reached


def new_data_folders(index_dir: Path, old: str) -> list[str]:
    return [p.name for p in index_dir.iterdir() if p.name.startswith("data-") and p.name != old]


def temp_manifests(index_dir: Path) -> list[str]:
    return [p.name for p in index_dir.iterdir() if p.name.startswith(".manifest.json.")]


def test_sigkill_at_every_build_stage_leaves_the_previous_index_answering(tmp_path, tiny_model, tiny_encoder):
    index_dir = tmp_path / "index"
    corpus = write_corpus(tmp_path / "corpus", seed=1)
    first = run_index(corpus, index_dir, env_for(tiny_model, tmp_path / "cache-0"))
    assert first.returncode == 0, first.stderr
    settings = settings_for(tiny_model, index_dir, tmp_path / "cache-0")
    old = assert_answers(index_dir, settings, tiny_encoder, "第1版")
    assert old["counts"]["paragraphs"] == 300

    write_corpus(corpus, seed=2)  # every paragraph changes: the next build must encode all of them
    # Killed before the model loads, after reading, while encoding, while writing the new data
    # folder and with the new manifest written but not yet renamed: the old index answers.
    for n, stage in enumerate(BEFORE_SWAP, start=1):
        cache = tmp_path / f"cache-{n}"  # a fresh cache, so each build really encodes
        reached = kill_at(index_cmd(corpus, index_dir), env_for(tiny_model, cache), stage, tmp_path)
        assert reached == list(STAGES[: STAGES.index(stage) + 1]), reached
        if stage == "writing data":
            assert new_data_folders(index_dir, old["data"]), "no new data folder at 'writing data'"
        if stage == "manifest tmp":
            assert temp_manifests(index_dir), "no temporary manifest at 'manifest tmp'"
        manifest = read_manifest(index_dir)
        assert manifest is not None, f"killed at {stage}: no manifest left"
        assert manifest["data"] == old["data"], f"killed at {stage}: the manifest moved on"
        assert_answers(index_dir, settings, tiny_encoder, "第1版")

    # Leftovers of the killed builds (data folders, temp manifest, the .lock file) break nothing.
    final = run_index(corpus, index_dir, env_for(tiny_model, tmp_path / "cache-final"))
    assert final.returncode == 0, final.stderr
    new = assert_answers(index_dir, settings, tiny_encoder, "第2版")
    assert new["data"] != old["data"]
    data_dirs = sorted(p.name for p in index_dir.iterdir() if p.name.startswith("data-"))
    assert len(data_dirs) <= 2 and new["data"] in data_dirs, data_dirs  # live + its predecessor


def rewrite_files(folder: Path, seed: int, names: list[str], paras: int = 15) -> None:
    """Give these files of a :func:`write_corpus` folder the text of ``seed`` (the others stay)."""
    rng = random.Random(seed)
    for name in names:
        body = [f"第{seed}版{name}第{p}段：" + "".join(rng.choice(HAN) for _ in range(rng.randint(30, 90))) + "。"
                for p in range(paras)]
        (folder / name).write_text("\n\n".join(body), encoding="utf-8")


def assert_update_state(index_dir: Path, settings: Settings, encoder, changed: list[str], marker: str) -> dict:
    """The index verifies and holds every document; the changed ones carry ``marker`` (old or new build)."""
    from rag.service import RagService

    LoadedIndex.open(index_dir, verify="stamped").close()
    svc = RagService.open(index_dir, settings, encoder=encoder)
    docs = svc.index.documents
    assert len(docs) == 20
    for name in changed:
        doc = docs[name.removesuffix(".txt")]
        texts = [svc.index.paragraphs[p].text for p in doc.paragraph_ids]
        assert texts and all(t.startswith(marker) for t in texts), (name, texts[0][:12])
    assert svc.search("香港新型工業化", k=5)
    manifest = svc.index.manifest
    svc.index.close()
    return manifest


def test_sigkill_during_an_update_leaves_the_old_or_the_new_index(tmp_path, tiny_model, tiny_encoder):
    """The incremental path (a few files changed, the other rows taken over) is as crash-safe."""
    index_dir = tmp_path / "index"
    corpus = write_corpus(tmp_path / "corpus", seed=1)
    first = run_index(corpus, index_dir, env_for(tiny_model, tmp_path / "cache-0"))
    assert first.returncode == 0, first.stderr
    settings = settings_for(tiny_model, index_dir, tmp_path / "cache-0")
    changed = [f"doc-{i:03d}.txt" for i in range(5)]
    old = assert_update_state(index_dir, settings, tiny_encoder, changed, "第1版")
    rewrite_files(corpus, 2, changed)
    for n, stage in enumerate(BEFORE_SWAP, start=1):
        cache = tmp_path / f"cache-{n}"  # the changed documents are really encoded each time
        kill_at(index_cmd(corpus, index_dir), env_for(tiny_model, cache), stage, tmp_path)
        manifest = read_manifest(index_dir)
        assert manifest is not None, f"killed at {stage}: no manifest left"
        assert manifest["data"] == old["data"], f"killed at {stage}: the manifest moved on"
        assert_update_state(index_dir, settings, tiny_encoder, changed, "第1版")
    done = run_index(corpus, index_dir, env_for(tiny_model, tmp_path / "cache-final"))
    assert done.returncode == 0, done.stderr
    assert "update: 5 files read, 5 documents redone" in done.stdout, done.stdout
    new = assert_update_state(index_dir, settings, tiny_encoder, changed, "第2版")
    assert new["counts"]["paragraphs"] == 300
    again = run_index(corpus, index_dir, env_for(tiny_model, tmp_path / "cache-final"))
    assert again.returncode == 0 and "index up to date" in again.stdout, again.stdout
    data_dirs = sorted(p.name for p in index_dir.iterdir() if p.name.startswith("data-"))
    assert len(data_dirs) <= 2 and new["data"] in data_dirs, data_dirs


def test_killed_first_build_leaves_no_index_and_a_kill_after_the_swap_a_whole_one(tmp_path, tiny_model, tiny_encoder):
    index_dir = tmp_path / "index"
    corpus = write_corpus(tmp_path / "corpus", seed=3, files=10)
    env = env_for(tiny_model, tmp_path / "cache")
    kill_at(index_cmd(corpus, index_dir), env, "writing data", tmp_path)
    assert read_manifest(index_dir) is None
    with pytest.raises(IndexStateError, match="rag index"):
        LoadedIndex.open(index_dir)
    # Killed after the manifest swap, before the process ended: the new index is whole.
    kill_at(index_cmd(corpus, index_dir), env, "swapped", tmp_path)
    settings = settings_for(tiny_model, index_dir, tmp_path / "cache")
    assert_answers(index_dir, settings, tiny_encoder, "第3版")
    done = run_index(corpus, index_dir, env)
    assert done.returncode == 0, done.stderr
    assert_answers(index_dir, settings, tiny_encoder, "第3版")


def test_two_builds_at_once_the_second_refuses_cleanly(tmp_path, tiny_model, tiny_encoder):
    index_dir = tmp_path / "index"
    corpus = write_corpus(tmp_path / "corpus", seed=4)
    env = env_for(tiny_model, tmp_path / "cache")
    # The first build stops itself once it holds the lock (before the model loads), so the
    # second certainly starts while the lock is held: a second build that runs anyway is a broken lock.
    first = start_paused_at(index_cmd(corpus, index_dir), env, "locked", tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_until_paused(first, "locked", tmp_path)
        second = subprocess.run(index_cmd(corpus, index_dir), env=env, cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
    finally:
        if first.returncode is None:
            first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2, (second.returncode, second.stdout, second.stderr)
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
    assert "already building" in lines[0] and str(first.pid) in lines[0]
    assert_answers(index_dir, settings_for(tiny_model, index_dir, tmp_path / "cache"), tiny_encoder, "第4版")


# -- tampering: bm25 files and the manifest itself (data files: tests/test_indexer.py) ------------


@pytest.fixture
def built(tmp_path) -> tuple[Path, Settings]:
    from rag.index.build import build_index
    from tests.fakes import HashingEncoder

    corpus = write_corpus(tmp_path / "corpus", seed=5, files=3, paras=5)
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embed_model="test-hashing")
    build_index([corpus], settings.index_dir, settings, encoder=HashingEncoder())
    return settings.index_dir, settings


def _bm25_files(index_dir: Path) -> list[str]:
    return sorted(n for n in read_manifest(index_dir)["checksums"] if n.startswith("bm25/"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_bm25_file_is_named_with_the_fix(built, damage):
    index_dir, _ = built
    names = _bm25_files(index_dir)
    assert len(names) >= 3
    data = index_dir / read_manifest(index_dir)["data"]
    for name in names:
        path = data / name
        original = path.read_bytes()
        if damage == "truncate":
            path.write_bytes(original[: len(original) // 2])
        elif damage == "flip":
            path.write_bytes(original[:-1] + bytes([original[-1] ^ 0x01]))
        else:
            path.unlink()
        with pytest.raises(IndexStateError) as err:
            LoadedIndex.open(index_dir, verify="stamped")
        assert name in str(err.value) and "rag index" in str(err.value)
        path.write_bytes(original)
    LoadedIndex.open(index_dir, verify="stamped")  # restored: loads again


def _edit_manifest(index_dir: Path, edit: Callable[[dict], object]) -> None:
    path = index_dir / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


MANIFEST_EDITS: dict[str, Callable[[dict], object]] = {
    "counts edited": lambda m: m["counts"].update(documents=99),
    "checksum edited": lambda m: m["checksums"]["vectors.npy"].update(sha256="0" * 64),
    "data removed": lambda m: m.pop("data"),
    "checksums removed": lambda m: m.pop("checksums"),
}


@pytest.mark.parametrize("edit", MANIFEST_EDITS, ids=list(MANIFEST_EDITS))
def test_edited_manifest_is_detected(built, edit):
    index_dir, settings = built
    _edit_manifest(index_dir, MANIFEST_EDITS[edit])
    with pytest.raises(IndexStateError) as err:
        LoadedIndex.open(index_dir)
    assert str(index_dir / MANIFEST) in str(err.value) and "rag index" in str(err.value)


@pytest.mark.parametrize("data", ["../../etc", "/etc", "data-x/../../..", "", 7])
def test_manifest_cannot_point_outside_the_index(built, data):
    """Even with a consistent self-checksum (an attacker can recompute it) the data folder must be local."""
    from rag.index.manifest import seal_manifest

    index_dir, _ = built
    path = index_dir / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["data"] = data
    path.write_text(json.dumps(seal_manifest(manifest), ensure_ascii=False), encoding="utf-8")
    with pytest.raises(IndexStateError, match="data folder"):
        LoadedIndex.open(index_dir)


@pytest.mark.parametrize("content", [b"", b"{", b'{"format_version": 1, "data": ', b"\x00" * 64, b"[]", b'"x"'])
def test_truncated_or_garbage_manifest_is_named(built, content):
    index_dir, _ = built
    (index_dir / MANIFEST).write_bytes(content)
    with pytest.raises(IndexStateError) as err:
        LoadedIndex.open(index_dir)
    assert str(index_dir / MANIFEST) in str(err.value) and "rag index" in str(err.value)


def test_cli_reports_a_tampered_index_in_one_line(built):
    index_dir, _ = built
    data = index_dir / read_manifest(index_dir)["data"]
    name = _bm25_files(index_dir)[0]
    (data / name).write_bytes(b"tampered")
    env = {**os.environ, "RAG_EMBED_MODEL": "test-hashing", "RAG_INDEX_DIR": str(index_dir)}
    proc = subprocess.run([sys.executable, "-m", "rag.cli", "search", "香港"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert name in lines[0] and "rag index" in lines[0]


def test_a_tampered_index_still_rebuilds(built):
    """A damaged index never blocks `rag index`: the next build starts afresh."""
    from rag.index.build import build_index
    from tests.fakes import HashingEncoder

    index_dir, settings = built
    (index_dir / MANIFEST).write_text("{", encoding="utf-8")
    build_index([index_dir.parent / "corpus"], index_dir, settings, encoder=HashingEncoder())
    LoadedIndex.open(index_dir, verify="stamped")
