"""One thread for all of this process's torch work.

libgomp (torch's OpenMP runtime) gives every thread that starts a parallel region its own team
of worker threads. Once the teams together hold more threads than there are cores, libgomp
stops spinning between parallel regions ("throttled"), so each of the ~100 parallel regions of
a forward pass waits for a futex wake-up. A server runs questions on many request threads,
each of which would grow its own team: a question took about twice as long there
(benchmarks/README.md, "Scale"), and any other thread's stray team slowed even the main
thread's. Every torch operation of the encoders (loading, casting, forward passes) and of
retrieval runs here instead, so the process has one team.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_ident: int | None = None


def on_torch_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` on the torch thread (started on first use); its result or error."""
    global _executor, _ident
    if threading.get_ident() == _ident:  # already there (a nested call)
        return fn(*args, **kwargs)
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torch")
            _ident = _executor.submit(threading.get_ident).result()
        executor = _executor
    return executor.submit(fn, *args, **kwargs).result()


def _forget_after_fork() -> None:
    """A forked child has no torch thread: the next call starts its own."""
    global _executor, _ident, _lock
    _executor, _ident, _lock = None, None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
