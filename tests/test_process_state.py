"""The library leaves the process alone: thread limits and the environment belong to its edges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.config import Settings
from rag.service import RagService
from tests.fakes import HashingEncoder

ROOT = Path(__file__).resolve().parents[1]

# A program that uses rag as a library, in a fresh process: the real model, FAISS and BM25.
PROGRAM = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path

    import faiss, numpy, torch  # noqa: F401  (their BLAS/OpenMP runtimes are loaded before the first count)
    from threadpoolctl import threadpool_info

    def counts():
        return sorted([i["internal_api"], i["filepath"], i["num_threads"]] for i in threadpool_info())

    env = dict(os.environ)
    torch_threads = torch.get_num_threads()
    before = counts()

    from rag.config import Settings
    from rag.index.build import build_index
    from rag.service import RagService

    work = Path(sys.argv[1])
    (work / "corpus").mkdir()
    (work / "corpus" / "a.txt").write_text(
        "香港生產力促進局成立新型工業化中心。\\n\\n中心支援本地製造業升級轉型，推動智能生產。", encoding="utf-8")
    (work / "corpus" / "b.txt").write_text("The centre helps manufacturers adopt smart production.", encoding="utf-8")
    settings = Settings(index_dir=work / "index", cache_dir=os.environ["RAG_CACHE_DIR"])
    build_index([work / "corpus"], settings.index_dir, settings)
    svc = RagService.open(settings.index_dir, settings)
    hits = svc.search("新型工業化中心", k=2)
    answer = svc.ask("What does the centre help manufacturers do?", k=2)
    after = counts()
    same_env = dict(os.environ) == env and torch.get_num_threads() == torch_threads

    # The edge's own call does change them: what `rag serve` and the CLI do at start.
    from rag.threads import limit_process
    limit_process()
    print(json.dumps({"before": before, "after": after, "same_env": same_env, "edge": counts(),
                      "found": hits[0].doc_id, "abstained": answer.abstained}))
""")


@pytest.mark.model
def test_importing_rag_and_searching_leaves_thread_counts_and_environment_as_they_were(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.setdefault("RAG_CACHE_DIR", str(Settings().cache_dir))
    res = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["found"] == "a" and not out["abstained"]  # the search really ran
    assert out["before"], "threadpoolctl found no BLAS/OpenMP runtime to watch"
    assert out["after"] == out["before"]
    assert out["same_env"]
    # The check can fail: limit_process sets every BLAS to one thread (visible wherever one had more).
    assert all(n == 1 for api, _, n in out["edge"] if api == "blas")
    if any(n > 1 for api, _, n in out["before"] if api == "blas"):
        assert out["edge"] != out["before"]


def test_the_request_thread_hook_runs_on_every_question(tmp_path):
    """What `rag serve` relies on to limit each request thread: the service's hook runs per call."""
    from tests.test_reliability_index import write_corpus

    corpus = write_corpus(tmp_path / "corpus", seed=1, files=2, paras=3)
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embed_model="test-hashing",
                        gloss_weight=0.0)
    enc = HashingEncoder()
    from rag.index.build import build_index

    build_index([corpus], settings.index_dir, settings, encoder=enc)
    calls: list[int] = []
    svc = RagService.open(settings.index_dir, settings, encoder=enc, on_request_thread=lambda: calls.append(1))
    svc.search("第1版", k=1)
    svc.search_many(["第1版", "第0篇"], k=1)
    svc.ask("第1版第0篇", k=1)
    assert len(calls) == 3
    from rag.threads import limit_this_thread

    assert RagService.open(settings.index_dir, settings, encoder=enc).on_request_thread is limit_this_thread
