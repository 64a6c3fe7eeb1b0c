"""Regenerate the cleaning golden files: ``python tests/golden/regen.py`` (then READ the diff).

One ``<doc_id>.json`` per document of the default corpus: ``{"doc_id", "title",
"paragraphs": [{"para_id", "heading", "text"}]}``. ``tests/test_clean.py`` compares exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORPUS = ROOT / "corpus"


def golden_of(doc) -> dict:
    return {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "paragraphs": [{"para_id": p.para_id, "heading": p.heading, "text": p.text} for p in doc.paragraphs],
    }


def dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from rag.ingest.corpus import load_corpus

    docs, skipped = load_corpus([CORPUS])
    if skipped:
        print(f"skipped: {skipped}", file=sys.stderr)
        return 1
    for old in HERE.glob("*.json"):
        old.unlink()
    for doc in docs:
        (HERE / f"{doc.doc_id}.json").write_text(dumps(golden_of(doc)), encoding="utf-8")
        print(f"{doc.doc_id}: {len(doc.paragraphs)} paragraphs")
    print(f"rewrote {len(docs)} golden files: read `git diff tests/golden` before committing them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
