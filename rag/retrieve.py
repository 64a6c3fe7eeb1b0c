"""Hybrid retrieval: dense (FAISS) + lexical (BM25) candidates, fused per chunk, ranked per paragraph."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.fusion import convex_fuse
from rag.index import LoadedIndex
from rag.normalise import Normaliser, cjk_ratio
from rag.relevance import relevance
from rag.types import Hit

# Follow-up questions lean on the previous turn: short, or pointing back with a demonstrative.
_ANAPHORA = re.compile(
    r"(^|[^\w])(那|這|这|該|该|其|它|他|她|它們|他們|她们|他们|此|上述|前者|後者|后者)"
    r"|\b(it|its|they|them|their|this|that|these|those|he|she|his|her)\b",
    re.IGNORECASE,
)


def contextualise(question: str, history: Sequence[dict[str, Any]] | None) -> str:
    """The text to retrieve with: a dependent follow-up gets the previous user question prepended."""
    if not history:
        return question
    previous = [m.get("content", "") for m in history if isinstance(m, dict) and m.get("role") == "user"]
    previous = [p for p in previous if isinstance(p, str) and p.strip()]
    if not previous:
        return question
    short = len(question) <= (24 if cjk_ratio(question) > 0.5 else 60)
    if short or _ANAPHORA.search(question):
        return f"{previous[-1].strip()} {question}"
    return question


class HybridRetriever:
    """Ranks paragraphs by ``(1 - w) * cosine + w * BM25 / max BM25`` over the best chunk.

    ``w`` is ``lexical_weight`` for questions written in Chinese and ``lexical_weight_latin``
    for questions without CJK characters (BM25 cannot match English words to Chinese text,
    so any overlap it finds there is mostly noise); both are chosen on the dev sets.
    """

    def __init__(
        self,
        index: LoadedIndex,
        encoder: Any,
        normaliser: Normaliser,
        *,
        lexical_weight: float = 0.3,
        lexical_weight_latin: float = 0.0,
        candidates: int = 100,
    ) -> None:
        self.index = index
        self.encoder = encoder
        self.normaliser = normaliser
        self.lexical_weight = lexical_weight
        self.lexical_weight_latin = lexical_weight_latin
        self.candidates = candidates
        self._chunk_ids = index.bm25.ids
        self._row = {cid: i for i, cid in enumerate(self._chunk_ids)}

    def weight_for(self, query: str) -> float:
        return self.lexical_weight if cjk_ratio(query) >= 0.2 else self.lexical_weight_latin

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(list(queries), kind="query")

    def search(self, query: str, k: int = 10, *, query_vector: np.ndarray | None = None) -> list[Hit]:
        if query_vector is None:
            query_vector = self.encode_queries([query])[0]
        return self._search_one(query, np.asarray(query_vector, dtype=np.float32), k)

    def search_many(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        if not queries:
            return []
        vectors = self.encode_queries(queries)
        return [self._search_one(q, v, k) for q, v in zip(queries, vectors, strict=True)]

    def component_scores(self, query: str, query_vector: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
        """Dense and BM25 scores of the candidate chunks (union of both top lists)."""
        n = len(self._chunk_ids)
        if n == 0:
            return {}, {}
        depth = min(self.candidates, n)
        dense_hits = self.index.store.search(query_vector[None, :], depth)
        lex_all = self.index.bm25.scores(self.normaliser.tokenise(query))
        cand = set(dense_hits.ids[0])
        if lex_all.any():
            top = np.argpartition(-lex_all, depth - 1)[:depth] if depth < n else np.arange(n)
            cand.update(self._chunk_ids[i] for i in top if lex_all[i] > 0)
        ids = sorted(cand)
        rows = np.array([self._row[c] for c in ids])
        dense_vals = self.index.store.vectors_for(ids) @ query_vector
        dense = {c: float(s) for c, s in zip(ids, dense_vals, strict=True)}
        lexical = {c: float(lex_all[r]) for c, r in zip(ids, rows, strict=True)}
        return dense, lexical

    def _search_one(self, query: str, query_vector: np.ndarray, k: int) -> list[Hit]:
        dense, lexical = self.component_scores(query, query_vector)
        fused = convex_fuse(dense, lexical, self.weight_for(query))
        best: dict[str, tuple[float, str]] = {}
        for cid, score in fused.items():
            pid = self.index.chunks[cid].para_id
            if pid not in best or score > best[pid][0]:
                best[pid] = (score, cid)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
        hits = []
        for pid, (score, cid) in ranked:
            para = self.index.paragraphs[pid]
            doc = self.index.documents.get(para.doc_id)
            hits.append(
                Hit(
                    para_id=pid,
                    doc_id=para.doc_id,
                    text=para.text,
                    score=round(score, 6),
                    dense_score=round(dense.get(cid, 0.0), 6),
                    lexical_score=round(lexical.get(cid, 0.0), 6),
                    title=doc.title if doc else "",
                    source=doc.source if doc else "",
                    date=doc.date if doc else None,
                    chunk_id=cid,
                    relevance=round(relevance(query, para.text, dense.get(cid)), 6),
                )
            )
        return hits
