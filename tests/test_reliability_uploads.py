"""A `rag serve` killed with SIGKILL in the middle of an upload's build: started again, it
answers from the previous index (or from the new one, when the kill came after the swap), its
sources folder matches the index it serves, and the upload can be sent again.

The server is a real subprocess with a real (tiny, random) sentence-transformers model; the
build's stage hook (``_RAG_TEST_BUILD_STAGES`` / ``_RAG_TEST_BUILD_PAUSE``) stops the server
process itself at the stage named, where the test kills it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server_utils import free_port, stop, wait_until
from tests.test_reliability_index import ROOT, build_tiny_model, env_for, wait_until_paused

pytestmark = pytest.mark.slow

ADMIN = {"X-API-Key": "admin"}
FIRST = "第一份文件：沙田馬場今日開放參觀。"
SECOND = "第二份文件：大埔工業邨擴建完成。"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def _serve(root: Path, model: Path, port: int, **env: str) -> subprocess.Popen:
    full = {**env_for(model, root / "cache"), "RAG_COLLECTIONS_DIR": str(root / "collections"),
            "RAG_ADMIN_KEYS": "admin", "GRADIO_ANALYTICS_ENABLED": "False", **env}
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--index", str(root / "index")]
    with open(root / "build.stderr", "ab") as err:
        return subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=subprocess.DEVNULL, stderr=err)


def _hits(base: str, query: str) -> list[str]:
    """The paragraphs of collection c a search finds (waits while the collection opens)."""
    deadline = time.monotonic() + 120
    while True:
        r = httpx.post(base + "/api/search", json={"query": query, "collection": "c", "k": 10}, timeout=60)
        if r.status_code == 200:
            return sorted(h["para_id"] for h in r.json()["hits"])
        assert r.status_code == 503 and time.monotonic() < deadline, r.text
        time.sleep(0.2)


def _upload(base: str, name: str, text: str) -> dict[str, Any]:
    r = httpx.post(base + "/api/collections/c/documents", headers=ADMIN, timeout=60,
                   files=[("files", (name, text.encode(), "text/plain"))])
    assert r.status_code == 202, r.text
    return r.json()


def _wait_job(base: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = httpx.get(f"{base}/api/jobs/{job_id}", headers=ADMIN, timeout=30).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise TimeoutError(job)


@pytest.mark.parametrize("stage", ["manifest tmp", "swapped"])
def test_sigkill_mid_upload_then_restart(tmp_path, tiny_model, stage):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sources = tmp_path / "collections" / "c" / "sources"

    server = _serve(tmp_path, tiny_model, port)
    try:
        wait_until(base + "/healthz", timeout=120, proc=server)
        assert _wait_job(base, _upload(base, "first.txt", FIRST)["job_id"])["status"] == "done"
        before = _hits(base, "沙田馬場")
        assert before == ["first#p1"]
    finally:
        stop(server)

    server = _serve(tmp_path, tiny_model, port, _RAG_TEST_BUILD_STAGES=str(tmp_path / "stages.txt"),
                    _RAG_TEST_BUILD_PAUSE=stage)
    try:
        wait_until(base + "/healthz", timeout=120, proc=server)
        _upload(base, "second.txt", SECOND)
        wait_until_paused(server, stage, tmp_path)  # the server stopped itself inside the build
        server.send_signal(signal.SIGKILL)
        server.wait()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == -signal.SIGKILL
    assert list((tmp_path / "collections" / "c" / ".pending").iterdir())  # a job cut short

    server = _serve(tmp_path, tiny_model, port)
    try:
        wait_until(base + "/healthz", timeout=120, proc=server)
        swapped = stage == "swapped"
        # The index it serves: the previous one, or the new one when the kill came after the swap.
        assert _hits(base, "大埔工業邨") == (["first#p1", "second#p1"] if swapped else ["first#p1"])
        # Its sources match it: the cut-short job was rolled back (or kept, once indexed).
        assert sorted(p.name for p in sources.iterdir()) == (["first.txt", "second.txt"] if swapped else ["first.txt"])
        assert not list((tmp_path / "collections" / "c" / ".pending").iterdir())
        # The upload can be sent again.
        job = _wait_job(base, _upload(base, "second.txt", SECOND)["job_id"])
        assert job["status"] == "done", job
        assert _hits(base, "大埔工業邨") == ["first#p1", "second#p1"]
        listed = httpx.get(base + "/api/collections", timeout=30).json()["collections"]
        assert {c["name"]: c["documents"] for c in listed}["c"] == 2
    finally:
        stop(server)
    assert os.path.isdir(tmp_path / "collections" / "c" / "index")
