"""The judge's paragraph KV states on disk beside the index, and the pre-read that fills them.

The store's rules (budget, eviction, uses, damaged files) are checked on bytes; the model's use of
it (a restarted process restores instead of evaluating, the same P(yes)), the pre-read of a real
index and what /readyz says of it run on the real model.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rag.llm.kvstore import FOLDER, USES, PrefixStore, prefix_key, store_for
from rag.llm.preread import PreRead

KEY_A, KEY_B, KEY_C = (prefix_key([i, i + 1]) for i in (1, 2, 3))


def test_a_state_is_saved_whole_and_read_back(tmp_path):
    store = PrefixStore(tmp_path / "kv", budget_mb=1)
    assert store.get(KEY_A) is None and KEY_A not in store
    assert store.put(KEY_A, b"a" * 1000)
    assert KEY_A in store and store.get(KEY_A) == b"a" * 1000
    assert not list((tmp_path / "kv").glob("*.tmp"))  # written under a temporary name, then renamed
    again = PrefixStore(tmp_path / "kv", budget_mb=1)  # a restarted process finds it
    assert again.get(KEY_A) == b"a" * 1000 and again.size_bytes == 1000


def test_a_full_store_drops_the_least_recently_read_or_refuses_the_pre_read(tmp_path):
    store = PrefixStore(tmp_path / "kv", budget_mb=1)
    half = b"x" * (400 << 10)
    assert store.put(KEY_A, half) and store.put(KEY_B, half)
    old = time.time() - 100
    import os

    os.utime(store._path(KEY_B), (old, old))  # B read long ago, A just now
    assert not store.put(KEY_C, half, evict=False)  # the pre-read never pushes out what questions use
    assert KEY_C not in store and KEY_A in store and KEY_B in store
    assert store.put(KEY_C, half)  # a question's new paragraph does: the least recently read goes
    assert KEY_B not in store and KEY_A in store and KEY_C in store
    assert not store._path(KEY_B).exists() and store.dropped == 1
    assert not store.put(KEY_B, b"y" * (2 << 20))  # larger than the whole budget: never saved


def test_uses_are_counted_and_kept(tmp_path):
    store = PrefixStore(tmp_path / "kv", budget_mb=1)
    for _ in range(3):
        store.note(KEY_B)
    store.note(KEY_A)
    store.flush()
    assert (tmp_path / "kv" / USES).exists()
    again = PrefixStore(tmp_path / "kv", budget_mb=1)
    assert again.uses(KEY_B) == 3 and again.uses(KEY_A) == 1 and again.uses(KEY_C) == 0


def test_leftovers_and_damage_are_cleaned_not_trusted(tmp_path):
    folder = tmp_path / "kv"
    folder.mkdir()
    (folder / f"{KEY_A.hex()}.kv.123.tmp").write_bytes(b"half")  # a killed write
    (folder / "notes.txt").write_text("not a state")
    (folder / USES).write_text("{broken")
    store = PrefixStore(folder, budget_mb=1)  # an unreadable uses.json loses only the order
    assert store.writable and len(store) == 0 and store.uses(KEY_A) == 0
    assert not list(folder.glob("*.tmp"))
    store.put(KEY_A, b"state")
    store._path(KEY_A).unlink()  # removed behind its back
    assert store.get(KEY_A) is None and KEY_A not in store


def test_a_folder_that_cannot_be_made_leaves_the_store_off(tmp_path):
    blocker = tmp_path / "index"
    blocker.write_text("a file where the index folder should be")
    store = PrefixStore(blocker / FOLDER / "m", budget_mb=1)
    assert not store.writable and not store.put(KEY_A, b"x") and store.get(KEY_A) is None
    assert store_for(tmp_path, tmp_path / "model.gguf", 0) is None  # a budget of 0: no store


class _Model:
    """A stand-in for the engine's pre-read: records the prefixes it was given."""

    def __init__(self, full_after: int | None = None) -> None:
        self.seen: list[list[int]] = []
        self.full_after = full_after

    def preread(self, prefix: list[int], store: PrefixStore, give_way: Any = None) -> str:
        if self.full_after is not None and len(self.seen) >= self.full_after:
            return "full"
        self.seen.append(prefix)
        if prefix_key(prefix) in store:
            return "had"
        store.put(prefix_key(prefix), b"s")
        return "saved"


class _Judge:
    def __init__(self, model: _Model) -> None:
        self.model = model

    def prompt(self, question: str, title: str, text: str) -> tuple[list[int], list[int]]:
        return [ord(c) for c in text[:8]], []


class _Paragraphs(list):
    def at(self, i: int) -> Any:
        return self[i]


def _fake_index(texts: list[str]) -> Any:
    return SimpleNamespace(index_dir=Path("idx"), paragraphs=_Paragraphs(SimpleNamespace(doc_id="d", text=t) for t in texts),
                           documents=SimpleNamespace(header=lambda doc: ("title", "", None)))


def test_the_pre_read_takes_the_most_asked_for_first_and_skips_what_is_saved(tmp_path):
    store = PrefixStore(tmp_path / "kv", budget_mb=1)
    texts = ["para-one", "para-two", "para-thr", "para-fou"]
    keys = [prefix_key([ord(c) for c in t]) for t in texts]
    for _ in range(3):
        store.note(keys[2])
    store.note(keys[3])
    store.put(keys[1], b"saved by an earlier run")
    model = _Model()
    pre = PreRead(_Judge(model), _fake_index(texts), store).start()  # type: ignore[arg-type]
    assert pre.wait(10)
    assert ["".join(map(chr, p)) for p in model.seen] == ["para-thr", "para-fou", "para-one", "para-two"]
    assert pre.describe()["state"] == "done" and (pre.saved, pre.had, pre.done) == (3, 1, 4)


def test_the_pre_read_stops_when_the_store_is_full(tmp_path):
    store = PrefixStore(tmp_path / "kv", budget_mb=1)
    pre = PreRead(_Judge(_Model(full_after=2)), _fake_index(["aaaa", "bbbb", "cccc"]), store).start()  # type: ignore[arg-type]
    assert pre.wait(10)
    assert pre.state == "full" and pre.saved == 2 and pre.done == 3


def test_the_pre_read_gives_way_to_questions(tmp_path):
    from rag.llm.admission import ModelQueue

    queue = ModelQueue(2)
    assert queue.try_enter()  # a question holds a place
    model = _Model()
    store = PrefixStore(tmp_path / "kv", budget_mb=1)
    pre = PreRead(_Judge(model), _fake_index(["aaaa", "bbbb"]), store, queue=queue).start()  # type: ignore[arg-type]
    time.sleep(0.3)
    assert model.seen == [] and pre.state == "running"  # waits while the question is served
    queue.leave()
    assert pre.wait(10) and len(model.seen) == 2
    stopped = PreRead(_Judge(_Model()), _fake_index(["cccc"]), store, queue=queue)  # type: ignore[arg-type]
    assert queue.try_enter()
    stopped.start()
    stopped.stop(timeout=5)
    assert stopped.state == "stopped" and stopped.done == 0
    queue.leave()


def test_a_paragraph_cut_short_by_a_question_is_read_again_after_it(tmp_path):
    from rag.llm.admission import ModelQueue

    queue = ModelQueue(2)
    came = threading.Event()

    class Chunked(_Model):
        """Reads a paragraph in two chunks; a question comes while the first paragraph is read."""

        def __init__(self) -> None:
            super().__init__()
            self.tries: list[str] = []

        def preread(self, prefix: list[int], store: PrefixStore, give_way: Any = None) -> str:
            self.tries.append("".join(map(chr, prefix)))
            if not came.is_set():
                came.set()
                assert queue.try_enter()  # the question takes its place between the two chunks
            if give_way is not None and give_way():
                return "gave way"
            return super().preread(prefix, store)

    model = Chunked()
    store = PrefixStore(tmp_path / "kv", budget_mb=1)
    pre = PreRead(_Judge(model), _fake_index(["aaaa", "bbbb"]), store, queue=queue).start()  # type: ignore[arg-type]
    assert came.wait(5)
    time.sleep(0.3)
    assert pre.state == "running" and pre.gave_way == 1 and model.seen == []  # waits for the question
    queue.leave()
    assert pre.wait(10) and pre.state == "done"
    assert model.tries == ["aaaa", "aaaa", "bbbb"] and (pre.saved, pre.done) == (2, 2)
    assert pre.describe()["gave_way"] == 1


# -- the real model --------------------------------------------------------------------------

@pytest.fixture
def real_store(local_judge, tmp_path):
    """A store attached to the session's real model; detached, and the memory restored, after."""
    model = local_judge.model
    store = model.attach_store(PrefixStore(tmp_path / "kv", budget_mb=64))
    yield model, store
    model.detach_store(store)


TITLE = "生產力局歡迎兩會"
TEXT = "香港生產力促進局主席陳祖恒表示，生產力局歡迎國家兩會提出發展新質生產力，並會全力支持香港推動新型工業化。"


@pytest.mark.model
@pytest.mark.slow
def test_a_restarted_process_restores_the_paragraph_and_gets_the_same_verdict(local_judge, real_store):
    model, store = real_store
    model.forget_memory()
    first = local_judge.p_yes("生產力局主席是誰？", TITLE, TEXT)  # evaluated, and saved beside the index
    assert len(store) == 1 and store.uses(prefix_key(local_judge.prompt("", TITLE, TEXT)[0])) == 1
    model.forget_memory()  # as a new process: nothing in memory
    misses, disk = model.stats.prefix_misses, model.stats.disk_hits
    again = local_judge.p_yes("生產力局主席是誰？", TITLE, TEXT)
    assert model.stats.prefix_misses == misses and model.stats.disk_hits == disk + 1
    assert again == pytest.approx(first, abs=1e-6)
    # A damaged file is not trusted: evaluated again, the same verdict, the file forgotten.
    key = next(iter(store._sizes))
    store._path(key).write_bytes(b"\x00" * 64)
    model.forget_memory()
    damaged = local_judge.p_yes("生產力局主席是誰？", TITLE, TEXT)
    assert damaged == pytest.approx(first, abs=1e-6) and model.stats.prefix_misses == misses + 1


@pytest.mark.model
@pytest.mark.slow
def test_a_pre_read_gives_way_between_chunks_and_the_question_is_judged_right(local_judge, real_store):
    from rag.llm.engine import PREREAD_CHUNK

    model, store = real_store
    text = TEXT * 3  # more than one chunk
    prefix = local_judge.prompt("", TITLE, text)[0]
    assert len(prefix) > PREREAD_CHUNK
    model.forget_memory()
    asked = iter([False, True])  # a question comes after the first chunk
    before = model.stats.gave_way
    assert model.preread(prefix, store, give_way=lambda: next(asked)) == "gave way"
    assert model.stats.gave_way == before + 1 and prefix_key(prefix) not in store
    # The question gets the verdict of a paragraph read whole, not of the half-read context.
    cut = local_judge.p_yes("生產力局主席是誰？", TITLE, text)
    model.forget_memory()
    store.forget(prefix_key(prefix))
    whole = local_judge.p_yes("生產力局主席是誰？", TITLE, text)
    assert cut == pytest.approx(whole, abs=1e-4)
    model.forget_memory()
    store.forget(prefix_key(prefix))
    assert model.preread(prefix, store, give_way=lambda: False) == "saved" and prefix_key(prefix) in store
    model.forget_memory()  # the state read in chunks, restored from disk: the same verdict
    disk = model.stats.disk_hits
    assert local_judge.p_yes("生產力局主席是誰？", TITLE, text) == pytest.approx(whole, abs=1e-3)
    assert model.stats.disk_hits == disk + 1


@pytest.mark.model
@pytest.mark.slow
def test_the_pre_read_of_a_real_index_saves_what_questions_then_restore(local_judge, real_store, tmp_path):
    from rag.config import Settings
    from rag.service import RagService
    from tests.server_utils import tiny_hashing

    model, store = real_store
    model.detach_store(store)  # the service attaches its own, beside its index
    settings, plain = tiny_hashing(tmp_path / "tiny", llm="local", llm_kv_disk_mb=64)
    svc = RagService(plain.index, plain.encoder, settings, judge=local_judge, on_request_thread=None)
    own = svc.attach_kv_store()
    try:
        assert own is not None and own.folder.parent == Path(plain.index.index_dir) / FOLDER
        model.forget_memory()
        pre = svc.start_preread(limit=3)
        assert pre is not None and pre.wait(180)
        assert pre.state == "done" and pre.saved == 3 and len(own) == 3
        again = svc.start_preread(limit=3)  # a restart: nothing to read again
        assert again is not None and again.wait(60) and (again.saved, again.had) == (0, 3)
        from rag.collections import IndexHolder

        info = IndexHolder(settings, svc).info()["llm"]["preread"]
        assert info["state"] == "done" and info["had"] == 3 and info["saved"] == 0
        assert info["files"] == 3 and info["files_mb"] > 0
        para = plain.index.paragraphs.at(0)
        header = plain.index.documents.header(para.doc_id)
        model.forget_memory()
        misses = model.stats.prefix_misses
        local_judge.p_yes("這段文字說甚麼？", header[0] if header else "", para.text)
        assert model.stats.prefix_misses == misses  # read ahead: restored, not evaluated
    finally:
        if own is not None:
            model.detach_store(own)
    assert isinstance(settings, Settings)


def test_the_pre_read_runs_on_its_own_thread_and_never_blocks_start(tmp_path):
    release = threading.Event()

    class Slow(_Model):
        def preread(self, prefix: list[int], store: PrefixStore, give_way: Any = None) -> str:
            release.wait(10)
            return super().preread(prefix, store)

    store = PrefixStore(tmp_path / "kv", budget_mb=1)
    t0 = time.perf_counter()
    pre = PreRead(_Judge(Slow()), _fake_index(["aaaa"]), store).start()  # type: ignore[arg-type]
    assert time.perf_counter() - t0 < 1.0 and pre.state == "running"
    release.set()
    assert pre.wait(10) and pre.state == "done"
