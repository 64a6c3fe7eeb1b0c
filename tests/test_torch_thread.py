"""All torch work of a process runs on one thread, whoever calls (one OpenMP team)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag.embedding.torch_thread import on_torch_thread


def test_every_caller_reaches_the_same_thread_and_gets_results_and_errors():
    here = threading.get_ident()
    there = on_torch_thread(threading.get_ident)
    assert there != here
    with ThreadPoolExecutor(4) as pool:
        idents = set(pool.map(lambda _: on_torch_thread(threading.get_ident), range(16)))
    assert idents == {there}
    assert on_torch_thread(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(ZeroDivisionError):
        on_torch_thread(lambda: 1 / 0)
    assert on_torch_thread(lambda: on_torch_thread(threading.get_ident)) == there  # nested: no deadlock


@pytest.mark.model
def test_encoding_runs_on_the_torch_thread(encoder, monkeypatch):
    import torch.nn.functional as F

    there = on_torch_thread(threading.get_ident)
    seen: set[int] = set()
    real = F.layer_norm

    def spy(*args, **kwargs):
        seen.add(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "layer_norm", spy)
    with ThreadPoolExecutor(3) as pool:
        vectors = list(pool.map(lambda q: encoder.encode([q], kind="query")[0], ["香港", "工业化", "industry"]))
    assert all(np.isfinite(v).all() and abs(np.linalg.norm(v) - 1) < 1e-4 for v in vectors)
    if type(encoder).__name__ == "LeanEncoder":  # its forward calls F.layer_norm directly
        assert seen == {there}
