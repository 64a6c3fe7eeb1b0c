"""Run the real app under uvicorn on a free port (in a thread or a `rag serve` subprocess)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(url: str, *, status: int | None = 200, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> httpx.Response:
    """Poll ``url`` until it answers (with ``status`` when given); fail with the last reason."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{out}")
        try:
            r = httpx.get(url, timeout=5)
            if status is None or r.status_code == status:
                return r
            last = f"{r.status_code} {r.text[:300]}"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout}s (last: {last})")


@contextlib.contextmanager
def llama_cpp_server(model_path: Path, *, threads: int | None = None, timeout: float = 120.0) -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``) on
    ``model_path`` in a child process; yields its ``/v1`` base URL. Its default ``--logits_all
    True`` is what gives logprobs."""
    port = free_port()
    env = {**os.environ, "OMP_WAIT_POLICY": "passive"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
         "--n_threads", str(threads or os.cpu_count() or 2), "--seed", "0", "--verbose", "False"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until(f"{base}/models", timeout=timeout, proc=proc)
        yield base
    finally:
        stop(proc, timeout=20)


@dataclass
class Server:
    base_url: str
    app: Any = None

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=60, **kw)


@contextlib.contextmanager
def serve_app(app: Any, *, ready_path: str = "/healthz", ready_status: int | None = 200) -> Iterator[Server]:
    """Serve an ASGI app with a real uvicorn server in a thread; stop it on exit."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(base + ready_path, status=ready_status)
        yield Server(base, app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextlib.contextmanager
def rag_serve(index_dir: Path, *, env: dict[str, str] | None = None, timeout: float = 120.0) -> Iterator[Server]:
    """Start ``rag serve --index DIR`` in a subprocess on a free port; stop it on exit."""
    port = free_port()
    full_env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--index", str(index_dir)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(base + "/healthz", timeout=timeout, proc=proc)
        yield Server(base)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """End a server child process: terminate, and kill it when it does not exit in ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- a tiny real corpus, indexed once per test session ------------------------------------------

XSS_TEXT = "網頁安全測試段落：<script>alert(1)</script> 與 <img src=x onerror=alert(2)> 都只應顯示為文字。"

TINY_CORPUS = {
    "industrialisation.txt": (
        "香港推動新型工業化\n\n"
        "特區政府表示，香港正積極推動新型工業化，從人才、技術、財政支援、推動科研和基礎建設五大方面入手。\n\n"
        "創新科技及工業局成立新型工業化辦公室，協助先進製造業企業在香港落戶，並設立新型工業化資助計劃。"
    ),
    "productivity.txt": (
        "新質生產力與香港\n\n"
        "新質生產力是以科技創新為主導、擺脫傳統增長路徑的先進生產力。生產力局表示，香港可以在國家發展新質生產力中發揮獨特作用。\n\n"
        "生產力局會以創新科技協助中小企業數碼轉型，提升生產效率。"
    ),
    "ai-centre.txt": (
        "數碼港人工智能超算中心\n\n"
        "數碼港人工智能超算中心首階段已經投入服務，為本地大學、科研機構和初創企業提供算力。\n\n"
        "政府推出30億元人工智能資助計劃，支持本地人工智能研發。"
    ),
}
# .jsonl paragraphs are kept verbatim (a .txt would have its tags cleaned away): this one
# reaches the UI with live-looking markup in its text and title, which must render as text.
XSS_PARA_ID = "security-note#p1"
XSS_JSONL = {"id": XSS_PARA_ID, "title": "網頁安全測試 <b>標題</b>", "text": XSS_TEXT}
TINY_METADATA = {
    "industrialisation.txt": {"title": "香港推動新型工業化", "date": "2024-03-01", "source": "https://www.example.gov.hk/industrialisation"},
    "productivity.txt": {"title": "新質生產力與香港", "date": "2024-05-20", "source": "https://example.hk/productivity"},
    "ai-centre.txt": {"title": "數碼港人工智能超算中心投入服務", "date": "2024-12-01"},
    "security-note.jsonl": {"date": "2024-01-01", "source": "javascript:alert(3)"},
}

_BUILT: dict[str, Any] = {}


def tiny_writer(root: Path, encoder: Any, base_url: str) -> tuple[Any, Any]:
    """(settings, service) over the tiny corpus whose answers the generator at ``base_url`` writes."""
    from rag.service import RagService

    base, index_dir = tiny_index(root, encoder)
    settings = base.model_copy(update={"llm_base_url": base_url})
    return settings, RagService.open(index_dir, settings, encoder=encoder)


def tiny_index(root: Path, encoder: Any) -> tuple[Any, Path]:
    """(settings, index_dir) of the tiny corpus under ``root``, built once per process."""
    import json

    from rag.config import Settings
    from rag.index.build import build_index

    if "index" not in _BUILT:
        corpus = root / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        for name, text in TINY_CORPUS.items():
            (corpus / name).write_text(text, encoding="utf-8")
        (corpus / "security-note.jsonl").write_text(json.dumps(XSS_JSONL, ensure_ascii=False) + "\n", encoding="utf-8")
        (corpus / "metadata.json").write_text(json.dumps(TINY_METADATA, ensure_ascii=False), encoding="utf-8")
        settings = Settings(index_dir=root / "index", cache_dir=root / "cache", corpus_dir=corpus)
        build_index([corpus], settings.index_dir, settings, encoder=encoder)
        _BUILT["index"] = (settings, settings.index_dir)
    return _BUILT["index"]


def tiny_hashing(root: Path, **update: Any) -> tuple[Any, Any]:
    """(settings, service) of the tiny corpus under the hashing encoder (no real model), every hit
    above the relevance floor (its scores are not calibrated); ``update``: more settings."""
    import json

    from rag.config import Settings
    from rag.index.build import build_index
    from rag.service import RagService
    from tests.fakes import HashingEncoder

    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    for name, text in TINY_CORPUS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    (corpus / "metadata.json").write_text(json.dumps(TINY_METADATA, ensure_ascii=False), encoding="utf-8")
    settings = Settings(_env_file=None, index_dir=root / "index", cache_dir=root / "cache", corpus_dir=corpus,
                        embed_model="test-hashing", min_score=0.0, **update)
    encoder = HashingEncoder()
    build_index([corpus], settings.index_dir, settings, encoder=encoder)
    return settings, RagService.open(settings.index_dir, settings, encoder=encoder)
