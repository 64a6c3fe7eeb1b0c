"""Engines for the local language model on this machine: load, RSS, prompt and generation speed.

    OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/llm_engines.py            # llama.cpp
    OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/llm_engines.py --torch    # + torch bfloat16

Each engine runs in its own child process (its RSS is its own). Prints one table row each:

- llama.cpp (llama-cpp-python, as built by `scripts/setup.sh --llm`), Q4_K_M weights;
- torch 2.13 + transformers, the same GGUF dequantised to bfloat16 (needs `pip install gguf`);
  prompt-only (the judge's pass) and greedy generation without a KV-cache library beyond
  transformers' own.

Also the judge as the product runs it: a new paragraph (its prefix evaluated) and a paragraph
seen before (only the question's tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

PARAGRAPH = (
    "生產力局主席陳祖恒表示，新質生產力成為兩會的關鍵詞，是推動國家、粵港澳大灣區、香港特區高速發展的重要力量。"
    "國家戰略為香港注入源源不絕的發展動能。香港要積極把握機遇，充分發揮一國兩制下背靠祖國、聯通世界的獨特優勢，"
    "擔當大灣區的中心城市和區域發展核心引擎，成為國家發展新質生產力的重要窗口。"
)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_llama(threads: int) -> dict:
    from rag.config import get_settings
    from rag.llm.engine import LocalModel
    from rag.llm.judge import Judge
    from rag.llm.weights import resolve_model_path

    s = get_settings()
    path = resolve_model_path(s.llm_model_path, s.cache_dir)
    base = rss_mb()
    t0 = time.perf_counter()
    model = LocalModel(path, threads=threads, cache_mb=512)
    load = time.perf_counter() - t0
    loaded = rss_mb()
    prompt = model.tokenize(model.format_chat([{"role": "user", "content": PARAGRAPH * 3 + "\n\n總結以上內容。"}]))
    t0 = time.perf_counter()
    model.llm.reset()
    model.llm.eval(prompt)
    pp = len(prompt) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = 0
    for piece in model.stream(prompt, max_tokens=64):
        n += 1 if piece else 0
    gen_s = time.perf_counter() - t0
    tg = model.stats.generated_tokens / max(gen_s, 1e-9)
    # the same generation beside one busy process (another request's encoder, an index build)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        before = model.stats.generated_tokens
        t0 = time.perf_counter()
        for _ in model.stream(prompt, max_tokens=32):
            pass
        tg_busy = (model.stats.generated_tokens - before) / (time.perf_counter() - t0)
    finally:
        hog.kill()
    judge = Judge(model)
    t0 = time.perf_counter()
    judge.p_yes("生產力局主席是誰？", "生產力局", PARAGRAPH)
    new_para = time.perf_counter() - t0
    t0 = time.perf_counter()
    judge.p_yes("Who is the chairman of the Productivity Council?", "生產力局", PARAGRAPH)
    seen_para = time.perf_counter() - t0
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    return {"engine": f"llama.cpp {threads} threads, OMP_WAIT_POLICY={policy}", "gen_busy_tok_s": tg_busy, "load_s": load, "rss_mb": loaded - base, "peak_rss_mb": rss_mb() - base,
            "prompt_tokens": len(prompt), "prompt_tok_s": pp, "gen_tok_s": tg,
            "judge_new_s": new_para, "judge_seen_s": seen_para}


def run_torch(threads: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rag.config import get_settings
    from rag.llm.weights import resolve_model_path

    torch.set_num_threads(threads)
    s = get_settings()
    path = resolve_model_path(s.llm_model_path, s.cache_dir)
    base = rss_mb()
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.bfloat16)
    model.eval()
    load = time.perf_counter() - t0
    loaded = rss_mb()
    text = tok.apply_chat_template([{"role": "user", "content": PARAGRAPH * 3 + "\n\n總結以上內容。"}],
                                   tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt").input_ids
    with torch.inference_mode():
        model(ids[:, :32])  # warm-up
        t0 = time.perf_counter()
        out = model(ids, use_cache=True)
        pp = ids.shape[1] / (time.perf_counter() - t0)
        past = out.past_key_values
        nxt = out.logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for _ in range(32):
            out = model(nxt, past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
        tg = 32 / (time.perf_counter() - t0)
    return {"engine": f"torch bf16 {threads} threads", "load_s": load, "rss_mb": loaded - base,
            "peak_rss_mb": rss_mb() - base, "prompt_tokens": int(ids.shape[1]), "prompt_tok_s": pp,
            "gen_tok_s": tg, "gen_busy_tok_s": None, "judge_new_s": None, "judge_seen_s": None}


def child(kind: str, threads: int) -> None:
    result = run_llama(threads) if kind == "llama" else run_torch(threads)
    print("RESULT " + json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torch", action="store_true", help="also torch bfloat16 (needs the gguf package)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--child", choices=["llama", "torch"])
    ap.add_argument("--spinning", action="store_true", help="also llama.cpp with OpenMP's default wait policy")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.threads)
        return
    runs = [("llama", "passive")] + ([("llama", None)] if args.spinning else []) + ([("torch", "passive")] if args.torch else [])
    rows = []
    for kind, policy in runs:
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if policy:
            env["OMP_WAIT_POLICY"] = policy
        proc = subprocess.run([sys.executable, __file__, "--child", kind, "--threads", str(args.threads)],
                              capture_output=True, text=True, env=env)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"{kind}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[7:]))
    print("| engine | load s | RSS MB (after load / peak) | prompt tok/s | generation tok/s | generation beside a busy process | judge, new paragraph s | judge, seen paragraph s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        def f(v, d=2):
            return "–" if v is None else f"{v:.{d}f}"
        print(f"| {r['engine']} | {f(r['load_s'])} | {r['rss_mb']:.0f} / {r['peak_rss_mb']:.0f} | "
              f"{f(r['prompt_tok_s'], 1)} ({r['prompt_tokens']} tok) | {f(r['gen_tok_s'], 1)} | {f(r['gen_busy_tok_s'], 1)} | "
              f"{f(r['judge_new_s'])} | {f(r['judge_seen_s'])} |")


if __name__ == "__main__":
    main()
