"""The English gloss channel: sense rules, weights, dense-side translation, the mixed-question
rule; with paired bootstrap intervals of the change against dense-only. Prints tables.

    python benchmarks/tune_gloss.py [--tune xquad/en-zh-dev] [--measure gold]
                                    [--rules first1,first2,first3,all,rank] [--weights 0.01,...]
                                    [--json reports/tune_gloss.json]

Tuning happens on ``--tune`` (dev sets) only. ``--measure gold`` runs the gold set's English
questions with the *chosen* settings (the product defaults) and reports them; nothing is chosen
on it. For each question the dense and gloss candidate scores are computed once per sense rule,
then every weight is replayed over them: ``score = dense + w * gloss / max gloss``.

Mixed questions: ``xquad/en-zh-dev`` English questions with one content word replaced by its
Chinese translation from the parallel ``xquad/zh-dev`` question (a CC-CEDICT candidate that
occurs in that question), e.g. "What is the 萨克森花园 in Polish?". Each rule for which channels
score them is replayed on those.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from query_cache import install  # noqa: E402
from tune_fusion import EXTERNAL, external_index, load_queries  # noqa: E402

from rag.config import get_settings  # noqa: E402
from rag.index.gloss import Glosser, GlossIndex, build_glossary  # noqa: E402
from rag.retrieval.crosslingual import load_dictionary  # noqa: E402
from rag.service import RagService  # noqa: E402
from rag.text.normalise import cjk_ratio, has_cjk  # noqa: E402
from rag.text.sentences import EN_STOPWORDS  # noqa: E402

BOOT = 10_000


def bootstrap(before: np.ndarray, after: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Mean change and its paired 95% percentile interval (questions resampled with replacement)."""
    diff = after - before
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(BOOT, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def ranks_of(svc, queries, vectors, weights, *, zh_weight=None, gloss_on=True):
    """Per weight: per question (R@1, R@5, RR@10) of ``dense + w * gloss / max``."""
    r = svc.retriever
    ids = svc.index.paragraphs.ids
    out = {w: [] for w in weights}
    saved = r.gloss_weight
    r.gloss_weight = 1.0 if gloss_on else 0.0
    try:
        for q, v in zip(queries, vectors, strict=True):
            c = r._components(svc.question(q["question"]), v)
            lex_w = (r.weight_for(svc.question(q["question"])) if zh_weight is None
                     else zh_weight(q["question"]) if callable(zh_weight) else zh_weight)
            top = float(c.lexical.max()) if len(c.lexical) else 0.0
            base = (1 - lex_w) * c.dense + (lex_w * c.lexical / top if top > 0 else 0.0)
            g_top = float(c.gloss.max()) if len(c.gloss) else 0.0
            gold = set(q["gold"])
            for w in weights:
                fused = base + (w * c.gloss / g_top if g_top > 0 else 0.0)
                order = sorted(range(len(fused)), key=lambda i: (-fused[i], ids[c.paragraphs[i]]))[:10]
                ranked = [ids[c.paragraphs[i]] for i in order]
                rr = next((1.0 / (k + 1) for k, p in enumerate(ranked) if p in gold), 0.0)
                out[w].append((float(bool(gold & set(ranked[:1]))), float(bool(gold & set(ranked[:5]))), rr))
    finally:
        r.gloss_weight = saved
    return {w: np.array(v) for w, v in out.items()}


def mixed_rules(svc, mixed, vecs, w):
    """(label, (before, after)) for each rule deciding which channels score a mixed question."""
    zh_only = ranks_of(svc, mixed, vecs, [0.0])[0.0]
    yield "Chinese BM25 only (w 0.1 from CJK share 0.2; the rule before)", (zh_only, zh_only)
    yield "dense only", (zh_only, ranks_of(svc, mixed, vecs, [0.0], zh_weight=0.0)[0.0])
    yield "Chinese BM25 (w 0.1) for any CJK, no gloss", (zh_only, ranks_of(svc, mixed, vecs, [0.0], zh_weight=any_cjk)[0.0])
    for cut in (0.2, 0.4, 0.6, 0.8, 1.01):
        m = with_cut(cut, lambda: ranks_of(svc, mixed, vecs, [w])[w])
        yield f"gloss below CJK share {cut} + Chinese BM25 from 0.2 (w {w})", (zh_only, m)
    for cut in (0.6, 1.01):
        m = with_cut(cut, lambda: ranks_of(svc, mixed, vecs, [w], zh_weight=any_cjk)[w])
        yield f"gloss below CJK share {cut} + Chinese BM25 (w 0.1) for any CJK", (zh_only, m)
    m = with_cut(1.01, lambda: ranks_of(svc, mixed, vecs, [w], zh_weight=0.0)[w])
    yield f"gloss only, any CJK share (w {w}), no Chinese BM25", (zh_only, m)


def any_cjk(question: str) -> float:
    return 0.1 if has_cjk(question) else 0.0


def with_cut(cut: float, run):
    """Run with the retriever's CJK-share cut for the gloss channel set to ``cut``."""
    import rag.retrieval.hybrid

    saved = rag.retrieval.hybrid.GLOSS_MAX_CJK
    rag.retrieval.hybrid.GLOSS_MAX_CJK = cut
    try:
        return run()
    finally:
        rag.retrieval.hybrid.GLOSS_MAX_CJK = saved


def gloss_for(svc, sources, rule: str, settings) -> GlossIndex:
    n = len(svc.index.paragraphs)
    texts = [svc.index.paragraphs.at(i).text for i in range(n)]
    glossary, _ = build_glossary(sources, texts, svc.normaliser, settings.glossary)
    glosser = Glosser(svc.normaliser, glossary, rule=rule, cache_dir=svc.settings.cache_dir)
    return GlossIndex.build(glosser.terms_many(texts), glosser.config(), {})


def mixed_questions(limit: int = 400, words_max: int = 1, *, chinese_frame: bool = False) -> list[dict]:
    """English questions with up to ``words_max`` words replaced by the Chinese words the parallel
    question uses; with ``chinese_frame``, the parallel Chinese question with those Chinese words
    replaced by the English ones instead ("萨克森花园用Polish怎么说？"; gold is the same paragraph)."""
    en = load_queries(EXTERNAL / "xquad/en-zh-dev")
    zh = {q["id"].split(":", 1)[1]: q for q in load_queries(EXTERNAL / "xquad/zh-dev")}
    dictionary = load_dictionary(get_settings().cache_dir)
    from rag.text.normalise import convert_script

    out = []
    for q in en:
        par = zh.get(q["id"].split(":", 1)[1])
        if par is None or dictionary is None:
            continue
        words = re.findall(r"[A-Za-z][A-Za-z'-]+", q["question"])
        text, done = (par["question"] if chinese_frame else q["question"]), 0
        for word in sorted(words, key=len, reverse=True):
            if word.lower() in EN_STOPWORDS:
                continue
            hit = next((c for c in dictionary.lookup(word.lower())
                        if len(c) >= 2 and convert_script(c, "t2s") in par["question"]), None)
            if hit:
                zh_word = convert_script(hit, "t2s")
                text = text.replace(zh_word, word, 1) if chinese_frame else text.replace(word, zh_word, 1)
                done += 1
                if done == words_max:
                    break
        if done:
            out.append({**q, "question": text})
        if len(out) >= limit:
            break
    return out


def fmt(m: np.ndarray) -> str:
    return f"{m[:, 0].mean():.3f} / {m[:, 1].mean():.3f} / {m[:, 2].mean():.3f}"


def ci(before: np.ndarray, after: np.ndarray, col: int) -> str:
    d, lo, hi = bootstrap(before[:, col], after[:, col])
    return f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tune", default="xquad/en-zh-dev")
    ap.add_argument("--rules", default="first1,first2,first3,all,rank", help="'' skips the tuning table")
    ap.add_argument("--weights", default="0.01,0.02,0.03,0.05,0.08")
    ap.add_argument("--translate", default="on,off", help="dense-side translation of English questions")
    ap.add_argument("--mixed", type=int, default=300, help="mixed questions to build (0: skip)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    install()  # dev questions' vectors cached across runs (benchmarks/query_cache.py)
    settings = get_settings()
    weights = [0.0] + [float(w) for w in args.weights.split(",")]
    report: dict = {}
    name = args.tune
    t0 = time.perf_counter()
    corpus = EXTERNAL / name / "corpus.jsonl"
    svc = RagService.open(external_index(name, settings), settings)
    queries = load_queries(EXTERNAL / name)
    default_gloss = svc.index.gloss
    print(f"\n## {name}: {len(queries)} questions (tuning set)\n")
    print("| translate | sense rule | w | R@1 / R@5 / MRR@10 | ΔR@1 [95% CI] | ΔR@5 [95% CI] |")
    print("|---|---|---:|---|---|---|")
    for tr in args.translate.split(",") if args.rules else ():
        svc.retriever.translate = tr == "on"
        vecs = svc.retriever.encode_queries([svc.question(q["question"]) for q in queries])
        for rule in args.rules.split(","):
            same = rule == default_gloss.config.get("sense_rule")
            svc.index.gloss = default_gloss if same else gloss_for(svc, [corpus], rule, settings)
            res = ranks_of(svc, queries, vecs, weights)
            base = res[0.0]
            for w in weights:
                if w == 0.0 and rule != args.rules.split(",")[0]:
                    continue
                m = res[w]
                print(f"| {tr} | {rule} | {w} | {fmt(m)} | {ci(base, m, 0)} | {ci(base, m, 1)} |", flush=True)
                report.setdefault(name, {})[f"{tr}/{rule}/{w}"] = m.mean(axis=0).tolist()
    svc.index.gloss = default_gloss
    svc.retriever.translate = svc.calibration.translate_queries

    for words_max, frame in ((1, False), (3, False), (1, True)) if args.mixed else ():
        mixed = mixed_questions(args.mixed, words_max, chinese_frame=frame)
        vecs = svc.retriever.encode_queries([svc.question(q["question"]) for q in mixed])
        how = "Chinese question, words put back in English" if frame else f"English question, up to {words_max} word(s) in Chinese"
        print(f"\n## mixed questions built from {name} ({how}): {len(mixed)} (e.g. {mixed[0]['question']!r})\n")
        ratio = [cjk_ratio(q["question"]) for q in mixed]
        print(f"CJK share of letters: median {np.median(ratio):.2f}, 10-90% {np.percentile(ratio, 10):.2f}-"
              f"{np.percentile(ratio, 90):.2f}\n")
        print("| rule | R@1 / R@5 / MRR@10 | ΔR@1 vs Chinese BM25 only [95% CI] |")
        print("|---|---|---|")
        w = svc.calibration.gloss_weight
        for label, m in mixed_rules(svc, mixed, vecs, w):
            print(f"| {label} | {fmt(m[1])} | {ci(m[0], m[1], 0)} |", flush=True)
            report.setdefault(f"mixed-{words_max}-{'zh' if frame else 'en'}", {})[label] = m[1].mean(axis=0).tolist()
    if args.mixed:
        # The same cut on Chinese questions (some carry Latin words: APEC, 2024): they must not lose.
        zh_name = "xquad/zh-dev"
        if (EXTERNAL / zh_name).exists():
            zsvc = RagService.open(external_index(zh_name, settings), settings)
            zq = load_queries(EXTERNAL / zh_name)
            zv = zsvc.retriever.encode_queries([zsvc.question(q["question"]) for q in zq])
            before = ranks_of(zsvc, zq, zv, [0.0], gloss_on=False)[0.0]
            print(f"\n## {zh_name}: the cut on Chinese questions\n")
            print("| rule | R@1 / R@5 / MRR@10 | ΔR@1 [95% CI] |")
            print("|---|---|---|")
            print(f"| no gloss | {fmt(before)} | |")
            for cut in (0.6, 0.8, 1.01):
                m = with_cut(cut, lambda: ranks_of(zsvc, zq, zv, [w])[w])
                print(f"| gloss below CJK share {cut} | {fmt(m)} | {ci(before, m, 0)} |", flush=True)
    print(f"\n({time.perf_counter() - t0:.0f}s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
