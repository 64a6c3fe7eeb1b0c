"""A bounded queue in front of the local language model (``RAG_LLM_QUEUE``).

The process has one model, and its lock serves one call at a time (``rag.llm.engine``); without
a bound, every question past the first would wait on that lock for as long as the others took,
until the client timed out. :class:`ModelQueue` admits a question that will use the model
(judge, rewrite, written answer) only while fewer than ``1 + size`` such questions are in
flight (the one being served and ``size`` waiting); past that it refuses at once with
:class:`~rag.errors.ModelBusyError` (HTTP 503 with ``Retry-After``). A question holds its place
from before its first model call to after its last, so it is never refused half-way.

Search and the document routes never ask for a place: they do not use the model.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator

from rag.errors import ModelBusyError

DEFAULT_RETRY_S = 5  # Retry-After before any question has been timed
MAX_RETRY_S = 120
_WEIGHT = 0.3  # of the latest question in the moving average of the time one holds its place


class ModelQueue:
    """At most ``1 + size`` questions in flight on the model; the rest are refused, not queued."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"the model queue size must be >= 0, got {size} (RAG_LLM_QUEUE)")
        self.size = size
        self._lock = threading.Lock()
        self._in_flight = 0
        self._held_s: float | None = None  # moving average of how long a question held its place
        self.admitted = 0
        self.rejected = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Questions admitted but not being served (all but one of those in flight)."""
        return max(0, self._in_flight - 1)

    def retry_after_s(self) -> int:
        """Seconds after which a place is likely free: about one question's time on the model."""
        if self._held_s is None:
            return DEFAULT_RETRY_S
        return max(1, min(MAX_RETRY_S, math.ceil(self._held_s)))

    def try_enter(self, *, only_if_idle: bool = False) -> bool:
        """Take a place if one is free (never waits); :meth:`leave` gives it back. ``only_if_idle``:
        only when no other question is in flight (a caller that must not wait on the model lock,
        and has a way without the model: the search's follow-up rewrite)."""
        with self._lock:
            if only_if_idle and self._in_flight:
                return False
            if self._in_flight >= 1 + self.size:
                self.rejected += 1
                return False
            self._in_flight += 1
            self.admitted += 1
            return True

    def leave(self, held_s: float | None = None) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            if held_s is not None:
                self._held_s = held_s if self._held_s is None else (1 - _WEIGHT) * self._held_s + _WEIGHT * held_s

    def refusal(self) -> ModelBusyError:
        """The error a refused question gets: what happened, what still works, when to retry."""
        retry = self.retry_after_s()
        return ModelBusyError(
            f"the language model is busy: {self.waiting} questions are already waiting for it "
            f"(RAG_LLM_QUEUE={self.size}); ask again in about {retry} s. Search (POST /api/search) "
            "does not use the model and still answers.", retry_after_s=retry)

    @contextlib.contextmanager
    def place(self) -> Iterator[None]:
        """Hold a place for the block; raises :class:`ModelBusyError` when the queue is full."""
        if not self.try_enter():
            raise self.refusal()
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.leave(time.monotonic() - t0)

    def stats(self) -> dict[str, int]:
        """For /readyz and the load test: the bound, what is in flight, and the counts since start."""
        with self._lock:
            return {"queue": self.size, "in_flight": self._in_flight, "admitted": self.admitted,
                    "rejected": self.rejected}
