"""Pre-read an index's paragraphs for the judge, in the background, into its store on disk.

A question's answer waits for the judge to read its top paragraphs: about a second each on 2
cores for a paragraph never read, a few milliseconds for one whose KV state is saved
(``rag.llm.kvstore``). At start-up (``rag serve``, ``RAG_LLM_PREREAD``), :class:`PreRead` reads the
index's paragraphs ahead of the questions and saves each state beside the index, until the store
is full (``RAG_LLM_KV_DISK_MB``):

- the most asked-for paragraphs first (the store's ``uses.json``: how often questions had the
  judge read each one), then the rest in the index's order;
- a paragraph saved before (by an earlier run, or a question) costs nothing: a restart only
  reads what is new;
- it gives way to questions: it starts a paragraph only while no question holds a place in the
  model's queue, and reads it in chunks of ``PREREAD_CHUNK`` tokens (64), stopping between two
  when a question has come; the paragraph is read again later. A question waits for one chunk
  at most (~1.4 s on 2 cores), never for a whole paragraph (3-16 s).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from rag.llm.kvstore import PrefixStore, prefix_key

if TYPE_CHECKING:
    from rag.index.loaded import LoadedIndex
    from rag.llm.admission import ModelQueue
    from rag.llm.judge import Judge

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.05  # how often a pre-read waiting for questions to finish looks again


class PreRead:
    """One index's pre-read: :meth:`start` runs it in a daemon thread; :meth:`describe` for /readyz."""

    def __init__(self, judge: Judge, index: LoadedIndex, store: PrefixStore, *,
                 queue: ModelQueue | None = None, limit: int | None = None) -> None:
        self.judge = judge
        self.index = index
        self.store = store
        self.queue = queue
        self.limit = limit  # at most this many paragraphs (tests, benchmarks); None = all
        self.state = "waiting"
        self.total = len(index.paragraphs) if limit is None else min(limit, len(index.paragraphs))
        self.done = self.saved = self.had = self.gave_way = 0
        self.seconds = 0.0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PreRead:
        self._thread = threading.Thread(target=self._run, name="llm-preread", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the pre-read to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "read": self.done, "of": self.total, "saved": self.saved,
                               "had": self.had, "gave_way": self.gave_way, "seconds": round(self.seconds, 1),
                               **self.store.describe()}
        if self.error:
            out["error"] = self.error
        return out

    # -- the work -------------------------------------------------------------------------
    def order(self) -> list[int]:
        """The paragraphs' rows: the most asked-for first, then the index's order. Only the keys
        are kept while sorting; a paragraph's tokens are made again when it is read (the store's
        budget usually ends the read long before the last row)."""
        rows = list(range(len(self.index.paragraphs)))
        if self.store.asked:  # nothing asked for yet: the index's order, without a pass over it
            uses: dict[int, int] = {}
            for i in rows:
                if self._stop.is_set():
                    break
                n = self.store.uses(prefix_key(self._prefix(i)))
                if n:
                    uses[i] = n
            rows.sort(key=lambda i: -uses.get(i, 0))  # stable: ties keep the index's order
        return rows if self.limit is None else rows[: self.limit]

    def _prefix(self, row: int) -> list[int]:
        """The judge's prefix of the paragraph at ``row``: its title and text, before any question."""
        para = self.index.paragraphs.at(row)
        header = self.index.documents.header(para.doc_id)
        return self.judge.prompt("", header[0] if header else "", para.text)[0]

    def _run(self) -> None:
        t0 = time.perf_counter()
        self.state = "running"
        try:
            model = self.judge.model
            give_way = None if self.queue is None else self._question_came
            for row in self.order():
                prefix, status = self._prefix(row), "gave way"
                while status == "gave way" and self._idle():  # a paragraph a question cut short: again
                    status = model.preread(prefix, self.store, give_way=give_way)
                    self.gave_way += status == "gave way"
                if status == "gave way":  # stopped
                    break
                self.done += 1
                if status == "full":
                    self.state = "full"
                    break
                if status == "saved":
                    self.saved += 1
                else:
                    self.had += 1
                self.seconds = time.perf_counter() - t0
            else:
                self.state = "done"
            if self._stop.is_set():
                self.state = "stopped"
        except Exception as exc:  # noqa: BLE001 - a background helper: log, say so on /readyz, never crash the server
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.warning("the pre-read of %s stopped: %s", self.index.index_dir, self.error)
        finally:
            self.seconds = time.perf_counter() - t0
            self.store.flush()
            log.info("pre-read of %s: %s, %d of %d paragraphs (%d saved, %d had) in %.1f s",
                     self.index.index_dir, self.state, self.done, self.total, self.saved, self.had, self.seconds)

    def _question_came(self) -> bool:
        """Between two chunks of a paragraph: stop for a question in the model's queue (or a stop)."""
        return self._stop.is_set() or (self.queue is not None and self.queue.in_flight > 0)

    def _idle(self) -> bool:
        """Wait until no question holds a place in the model's queue; False when stopped."""
        while not self._stop.is_set():
            if self.queue is None or self.queue.in_flight == 0:
                return True
            self._stop.wait(IDLE_POLL_S)
        return False
