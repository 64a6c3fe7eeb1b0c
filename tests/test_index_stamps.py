"""Opening an index skips re-hashing files unchanged since they were hashed (stamps), safely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rag.index.integrity as index_mod
from rag.config import Settings
from rag.errors import IndexStateError
from rag.index.integrity import STAMPS_FILE
from rag.index.loaded import LoadedIndex
from rag.index.manifest import read_manifest
from tests.test_reliability_index import write_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def built(tmp_path, monkeypatch) -> tuple[Path, Settings]:
    """A small index whose files count as settled at once (no 1 s wait for coarse clocks)."""
    from rag.index.build import build_index
    from tests.fakes import HashingEncoder

    monkeypatch.setattr(index_mod, "RACY_SECONDS", 0.0)
    corpus = write_corpus(tmp_path / "corpus", seed=7, files=3, paras=5)
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embed_model="test-hashing")
    build_index([corpus], settings.index_dir, settings, encoder=HashingEncoder())
    return settings.index_dir, settings


def _data(index_dir: Path) -> Path:
    return index_dir / read_manifest(index_dir)["data"]


def _open(index_dir: Path, settings: Settings, verify: str = "stamped") -> LoadedIndex:
    return LoadedIndex.open(index_dir, verify=verify, settings=settings)


def test_the_build_stamps_its_files_and_an_open_hashes_nothing(built):
    index_dir, settings = built
    n_files = len(read_manifest(index_dir)["checksums"])
    stamps = json.loads((settings.cache_dir / STAMPS_FILE).read_text(encoding="utf-8"))
    assert sum(k.startswith(str(_data(index_dir).resolve())) for k in stamps) == n_files
    loaded = _open(index_dir, settings)
    assert loaded.verified == {"hashed_files": 0, "hashed_bytes": 0, "vouched_files": n_files}
    full = _open(index_dir, settings, verify="full")  # `rag verify`: everything, regardless
    assert full.verified["hashed_files"] == n_files and full.verified["vouched_files"] == 0


@pytest.mark.parametrize("how", ["same size", "times restored", "replaced by a copy"])
def test_an_altered_file_is_hashed_again_and_refused(built, how):
    index_dir, settings = built
    path = _data(index_dir) / "sentence_vectors.npy"
    original = path.read_bytes()
    st = path.stat()
    altered = original[:-1] + bytes([original[-1] ^ 0x01])
    if how == "replaced by a copy":
        tmp = path.with_name("x.tmp")
        tmp.write_bytes(altered)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, path)
    else:
        path.write_bytes(altered)
        if how == "times restored":
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # only ctime still tells
    with pytest.raises(IndexStateError, match="sentence_vectors.npy does not match its checksum"):
        _open(index_dir, settings)
    path.write_bytes(original)  # the same bytes again: hashed, matches, stamped anew
    assert _open(index_dir, settings).verified["hashed_files"] == 1
    assert _open(index_dir, settings).verified["hashed_files"] == 0


def test_an_edited_checksum_is_not_vouched_for(built):
    from rag.index.manifest import seal_manifest

    index_dir, settings = built
    path = index_dir / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["checksums"]["vectors.npy"]["sha256"] = "0" * 64
    path.write_text(json.dumps(seal_manifest(manifest)), encoding="utf-8")  # even re-sealed
    with pytest.raises(IndexStateError, match="vectors.npy does not match its checksum"):
        _open(index_dir, settings)


def test_files_written_just_before_hashing_are_not_stamped(tmp_path, monkeypatch):
    """A coarse clock could hide a second write in the same tick: such files are hashed next time."""
    from rag.index.build import build_index
    from tests.fakes import HashingEncoder

    monkeypatch.setattr(index_mod, "RACY_SECONDS", 3600.0)
    corpus = write_corpus(tmp_path / "corpus", seed=8, files=2, paras=3)
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embed_model="test-hashing")
    build_index([corpus], settings.index_dir, settings, encoder=HashingEncoder())
    n_files = len(read_manifest(settings.index_dir)["checksums"])
    assert not (settings.cache_dir / STAMPS_FILE).exists()
    assert _open(settings.index_dir, settings).verified["hashed_files"] == n_files
    assert _open(settings.index_dir, settings).verified["hashed_files"] == n_files


@pytest.mark.parametrize("stamps", ["garbage", "a list", "unwritable"])
def test_bad_or_unwritable_stamps_only_cost_hashing(built, stamps):
    index_dir, settings = built
    path = settings.cache_dir / STAMPS_FILE
    n_files = len(read_manifest(index_dir)["checksums"])
    if stamps == "unwritable":
        path.unlink()
        path.mkdir()  # a folder where the file should be: reading and writing both fail
    else:
        path.write_text("{not json" if stamps == "garbage" else "[1, 2]", encoding="utf-8")
    loaded = _open(index_dir, settings)
    assert loaded.verified["hashed_files"] == n_files and len(loaded.paragraphs) > 0
    expect = n_files if stamps == "unwritable" else 0
    assert _open(index_dir, settings).verified["hashed_files"] == expect


def test_stamps_of_removed_index_folders_are_dropped(built):
    index_dir, settings = built
    old = str(_data(index_dir).resolve())
    path = settings.cache_dir / STAMPS_FILE
    stamps = json.loads(path.read_text(encoding="utf-8"))
    stamps["/nonexistent/data-x/vectors.npy"] = {"stat": [1, 2, 3, 4, 5], "sha256": "0" * 64}
    path.write_text(json.dumps(stamps), encoding="utf-8")
    audit = _data(index_dir) / "audit.json"
    audit.write_bytes(audit.read_bytes())  # same bytes, new ctime: hashed again, then saved
    assert _open(index_dir, settings).verified["hashed_files"] == 1
    kept = json.loads(path.read_text(encoding="utf-8"))
    assert "/nonexistent/data-x/vectors.npy" not in kept and any(k.startswith(old) for k in kept)


def _cli(*args: str, index_dir: Path, settings: Settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAG_EMBED_MODEL": "test-hashing", "RAG_CACHE_DIR": str(settings.cache_dir)}
    return subprocess.run([sys.executable, "-m", "rag.cli", *args, "--index", str(index_dir)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_rag_verify_hashes_everything_and_names_a_bad_file(built):
    index_dir, settings = built
    n_files = len(read_manifest(index_dir)["checksums"])
    ok = _cli("verify", index_dir=index_dir, settings=settings)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"ok: {index_dir}") and f"{n_files} files" in ok.stdout
    path = _data(index_dir) / "paragraph_text.bin"
    st = path.stat()
    blob = bytearray(path.read_bytes())
    blob[0] ^= 0x20
    path.write_bytes(bytes(blob))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    bad = _cli("verify", index_dir=index_dir, settings=settings)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "paragraph_text.bin does not match its checksum" in bad.stderr and "rag index" in bad.stderr
    missing = _cli("verify", index_dir=index_dir.parent / "nowhere", settings=settings)
    assert missing.returncode == 2 and "no index in" in missing.stderr
