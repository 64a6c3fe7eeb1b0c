"""What the CPU does natively, and the encoding precision that follows; standard library only.

Kept free of numpy and torch so the no-op check of `rag index` (``rag.index.freshness``) can work out
the precision an index would be built in without importing either.
"""

from __future__ import annotations

import functools
from typing import Literal

DTYPES = ("auto", "float32", "bfloat16")
Dtype = Literal["float32", "bfloat16"]


@functools.lru_cache(maxsize=1)
def cpu_has_native_bfloat16() -> bool:
    """True when this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX), on Linux."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def pick_dtype(requested: str, device: str, native: bool) -> Dtype:
    """``auto`` is bfloat16 on a CPU with native bfloat16, else float32; anything else as asked."""
    if requested == "auto":
        return "bfloat16" if str(device).startswith("cpu") and native else "float32"
    return requested  # type: ignore[return-value]
