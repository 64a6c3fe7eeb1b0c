"""Thread limits for a process that answers questions, set by its edges, never by library calls.

``rag serve`` and the CLI commands that search call :func:`limit_process` once at start; a
:class:`rag.service.RagService` then calls :func:`limit_this_thread` on every thread that asks
(a server's request threads), which does nothing in a process whose edge did not choose the
limits: a program that imports ``rag`` and opens a service itself keeps its thread settings.

Why one thread: a question's retrieval is a few small matrix products and one graph search, so
extra BLAS/OpenMP threads gain nothing there, but they spin-wait after each call and take the
cores from the encoder's threads (query encoding is measured in benchmarks/README.md). The
encoder's torch thread (``rag/embedding/torch_thread.py``) never calls this and keeps its own.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

_OPENMP: list[Any] = []  # the OpenMP runtimes loaded (torch's, faiss's), found by limit_process
_THREAD = threading.local()


def limit_process() -> None:
    """One thread for numpy's and FAISS's BLAS (a process-wide setting), and this thread's OpenMP."""
    try:
        import faiss  # noqa: F401  (loads faiss's BLAS and OpenMP, so they can be limited)
        from threadpoolctl import ThreadpoolController

        ctl = ThreadpoolController()
        ctl.select(user_api="blas").limit(limits=1)  # numpy's and faiss's OpenBLAS (global)
        _OPENMP[:] = list(ctl.select(internal_api="openmp").lib_controllers)
    except Exception:  # a missing or unusual BLAS is only slower, never wrong
        log.debug("could not limit BLAS/OpenMP threads", exc_info=True)
    limit_this_thread()


def limit_this_thread() -> None:
    """One OpenMP thread for whatever this thread runs in parallel regions (FAISS's searches).

    OpenMP's thread count is a per-thread setting, so each thread that searches sets it.
    Both OpenMP runtimes are set: torch loads its libgomp into the global symbol scope, so
    FAISS's parallel regions run on torch's runtime, and a team of threads there beside the
    torch thread's makes libgomp stop spinning between regions (slower question encoding).
    Does nothing before :func:`limit_process` has found the runtimes.
    """
    if getattr(_THREAD, "limited", False) or not _OPENMP:
        return
    _THREAD.limited = True
    for lib in _OPENMP:
        try:
            lib.set_num_threads(1)
        except Exception:  # only slower, never wrong
            log.debug("could not limit %s", lib.filepath, exc_info=True)
