"""Compare judge prompt framings on dev-set pairs (gold paragraph vs the best near miss).

Reads the questions and paragraph ids that ``judge_calibration.py`` stored, and scores each
framing on the same pairs: AUC of gold vs near miss, and at each framing's own best floor the
false-rejection / near-miss-rejection trade-off. Dev sets only.

    OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/judge_prompts.py reports/judge-calibration.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

FRAMINGS = {
    "yesno": (
        "You check whether a passage answers a question. Reply with one word: yes or no.",
        "Passage:\n{passage}\n\nQuestion: {question}\n\nDoes the passage answer the question? Reply yes or no.",
        "yes",
    ),
    "strict": (
        "You decide whether a passage states the specific information a question asks for. The passage "
        "may be in Chinese and the question in English or Chinese. Reply yes only if the passage itself "
        "gives the answer; reply no if it is only on the same topic.",
        "Passage:\n{passage}\n\nQuestion: {question}\n\nDoes the passage give the answer? Reply yes or no.",
        "yes",
    ),
    "none": (
        "You answer questions with a short quote from the passage. If the passage does not contain the "
        "answer, reply exactly NONE.",
        "Passage:\n{passage}\n\nQuestion: {question}\n\nQuote the answer from the passage, or reply NONE.",
        "none",
    ),
}


def auc(pos: list[float], neg: list[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / max(len(pos) * len(neg), 1)


def main() -> None:
    import numpy as np

    from rag.config import Settings
    from rag.llm.engine import get_local_model
    from rag.llm.weights import resolve_model_path

    store = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(FRAMINGS)
    texts: dict[str, tuple[str, str]] = {}
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "external"
    for corpus in root.glob("*/*/corpus.jsonl"):
        for line in corpus.open(encoding="utf-8"):
            row = json.loads(line)
            texts[row["id"]] = (row.get("title", ""), row["text"])
    pairs = []  # (question, para_id, is_gold)
    for q in store["questions"].values():
        gold = [r for r in q["answerable"] if r[2]]
        if gold:
            pairs.append((q["question"], gold[0][0], True, q["lang"]))
        if q["near_miss"]:
            pairs.append((q["question"], q["near_miss"][0][0], False, q["lang"]))
    s = Settings(llm="local")
    model = get_local_model(resolve_model_path(s.llm_model_path, s.cache_dir), threads=2, cache_mb=64)
    slot = "\u241fQ\u241f"
    for name in names:
        system, user, kind = FRAMINGS[name]
        if kind == "yes":
            pos_ids = [model.tokenize(w)[0] for w in ("yes", "Yes", "YES") if len(model.tokenize(w)) == 1]
            neg_ids = [model.tokenize(w)[0] for w in ("no", "No", "NO") if len(model.tokenize(w)) == 1]
        else:
            neg_ids = sorted({model.tokenize(w)[0] for w in ("NONE", "None", "none", "NO")})
        t0 = time.perf_counter()
        scored = []
        for question, pid, is_gold, lang in pairs:
            title, text = texts[pid]
            passage = (f"{title}\n" if title else "") + text[:1200]
            rendered = model.format_chat([{"role": "system", "content": system},
                                          {"role": "user", "content": user.format(passage=passage, question=slot)}])
            head, tail = rendered.split(slot)
            logits = model.next_token_logits(model.tokenize(head), model.tokenize(question + tail))
            logits = logits - logits.max()
            probs = np.exp(logits)
            probs /= probs.sum()
            if kind == "yes":
                y, n = float(probs[pos_ids].sum()), float(probs[neg_ids].sum())
                p = y / (y + n) if y + n > 0 else 0.5
            else:
                p = 1.0 - float(probs[neg_ids].sum())
            scored.append((p, is_gold, lang))
        pos = [p for p, g, _ in scored if g]
        neg = [p for p, g, _ in scored if not g]
        per_lang = {lang: auc([p for p, g, la in scored if g and la == lang], [p for p, g, la in scored if not g and la == lang])
                    for lang in sorted({la for _, _, la in scored})}
        # the floor that keeps every gold paragraph but one, and the near misses it rejects
        floor = sorted(pos)[1] if len(pos) > 2 else 0.5
        rejected = sum(p < floor for p in neg)
        print(f"{name}: AUC {auc(pos, neg):.3f} "
              f"({', '.join(f'{k} {v:.3f}' for k, v in per_lang.items())}); floor {floor:.3f} keeps "
              f"{len(pos) - 1}/{len(pos)} gold and rejects {rejected}/{len(neg)} near misses; "
              f"{(time.perf_counter() - t0) / len(pairs):.2f} s a pair", flush=True)


if __name__ == "__main__":
    main()
