"""Hybrid retrieval: dense (FAISS) + lexical (BM25) candidates, fused per chunk, ranked per paragraph."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from rag.index.loaded import LoadedIndex
from rag.profiles import E5_SMALL, ModelProfile
from rag.question import Question
from rag.retrieval.crosslingual import load_dictionary, translate_query
from rag.retrieval.fusion import fuse, top_k
from rag.retrieval.relevance import relevance
from rag.store.base import LexicalHits
from rag.text.language import GLOSS_MAX_CJK, LATIN_QUESTION_MAX_CJK
from rag.text.normalise import Normaliser
from rag.types import Hit

if TYPE_CHECKING:
    from rag.embedding import Encoder

TRANSLATION_MIN_WEIGHT = 0.3
# The English gloss channel scores a question whose CJK share of letters is below GLOSS_MAX_CJK:
# English questions, and mixed ones ("What is 新質生產力?") together with the Chinese BM25 (which
# takes the CJK part from LATIN_QUESTION_MAX_CJK up). Both thresholds live in rag/text/language.py;
# GLOSS_MAX_CJK is read from this module (benchmarks/tune_gloss.py sets it here).

class HybridRetriever:
    """Ranks paragraphs by ``(1 - w) * dense + w * BM25 / max BM25 + g * gloss / max gloss``.

    ``dense`` is the mean of the paragraph's best chunk cosine and its best sentence cosine
    (a question usually matches one sentence; the whole chunk adds context), ``BM25`` the best
    score of its chunks. ``w`` is ``lexical_weight`` for questions written in Chinese and
    ``lexical_weight_latin`` for questions without CJK characters (BM25 cannot match English
    words to Chinese text, so what it finds there is mostly noise); both chosen on dev sets.
    ``gloss`` is the BM25 of the question's English words against the paragraph's English gloss
    (``rag/index/gloss.py``), with weight ``gloss_weight`` for questions whose CJK share is below
    ``GLOSS_MAX_CJK``; its maximum is taken over the candidates, which always include the
    paragraphs with the best gloss scores of the whole index (so it is the index-wide maximum,
    at any corpus size).
    """

    def __init__(
        self,
        index: LoadedIndex,
        encoder: Encoder,
        normaliser: Normaliser,
        *,
        lexical_weight: float,
        lexical_weight_latin: float,
        translate: bool,
        gloss_weight: float,
        candidates: int = 100,
        cache_dir: Path | None = None,
        calibration: ModelProfile = E5_SMALL,
    ) -> None:
        self.index = index
        self.calibration = calibration  # the embedding model's relevance model (rag.retrieval.relevance)
        self.gloss_weight = gloss_weight
        self.translate = translate
        self.encoder = encoder
        self.normaliser = normaliser
        self.lexical_weight = lexical_weight
        self.lexical_weight_latin = lexical_weight_latin
        self.candidates = candidates
        self.cache_dir = cache_dir  # where CC-CEDICT's parse is kept (RAG_CACHE_DIR)

    def dense_text(self, question: Question) -> str:
        """The text embedded for a query: an English question gets its likely Chinese words.

        Appending the CC-CEDICT translations (weight >= 0.3, i.e. at most 3 senses) of an
        English question's content words gives the multilingual encoder Chinese anchors (it
        helps English -> Chinese recall on the dev set; scoring the same translations with BM25
        was worse at every weight: docs/retrieval.md).
        """
        query = question.search_text
        if not self.translate or question.cjk >= LATIN_QUESTION_MAX_CJK:
            return query
        terms = dict.fromkeys(t for t, w in translate_query(query, load_dictionary(self.cache_dir)) if w >= TRANSLATION_MIN_WEIGHT)
        return f"{query} {' '.join(terms)}" if terms else query

    def weight_for(self, question: Question) -> float:
        return self.lexical_weight if question.cjk >= LATIN_QUESTION_MAX_CJK else self.lexical_weight_latin

    def gloss_terms(self, question: Question) -> list[str]:
        """The question's English terms for the gloss channel ([] when the channel is off for it)."""
        if self.gloss_weight <= 0 or self.index.gloss is None or question.cjk >= GLOSS_MAX_CJK:
            return []
        return question.gloss_terms

    def encode_queries(self, questions: Sequence[Question]) -> np.ndarray:
        return self.encoder.encode([self.dense_text(q) for q in questions], kind="query")

    def search(self, question: Question, k: int = 10, *, query_vector: np.ndarray | None = None) -> list[Hit]:
        if query_vector is None:
            query_vector = self.encode_queries([question])[0]
        return self._search_one(question, np.asarray(query_vector, dtype=np.float32), k)

    def search_many(self, questions: Sequence[Question], k: int = 10) -> list[list[Hit]]:
        if not questions:
            return []
        vectors = self.encode_queries(questions)
        return [self._search_one(q, v, k) for q, v in zip(questions, vectors, strict=True)]

    def component_scores(
        self, question: Question, query_vector: np.ndarray
    ) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
        """Per candidate paragraph: dense score, best BM25 score, and its best chunk id."""
        c = self._components(question, query_vector)
        ids, chunk_ids = self.index.paragraphs.ids, self.index.chunk_ids
        paras = c.paragraphs.tolist()
        return (
            dict(zip((ids[p] for p in paras), c.dense.tolist(), strict=True)),
            dict(zip((ids[p] for p in paras), c.lexical.tolist(), strict=True)),
            {ids[p]: chunk_ids[r] for p, r in zip(paras, c.best_chunk.tolist(), strict=True)},
        )

    def _candidates(self, question: Question, query_vector: np.ndarray) -> tuple[np.ndarray, LexicalHits]:
        """Candidate paragraph rows (dense top hits + BM25 top hits) and the question's BM25."""
        index = self.index
        depth = min(self.candidates * 2, len(index.chunk_ids))
        rows = index.store.search_rows(query_vector[None, :], depth)[1][0]
        lexical = index.bm25.search(question.tokens, depth)
        rows = np.concatenate([rows[rows >= 0], lexical.rows])
        return np.unique(index.chunk_table[rows.astype(np.int64), 0]), lexical

    def _components(self, question: Question, query_vector: np.ndarray) -> _Components:
        """Exact dense scores of every candidate paragraph, from all its chunk and sentence rows."""
        index = self.index
        if not index.chunk_ids:
            return _Components.empty()
        paras, lex = self._candidates(question, query_vector)
        paras, gloss = self._with_gloss(question, paras)
        # Chunk rows of the candidates: one gather, one matrix product, a max per paragraph.
        c_start, c_end = index.chunk_offsets[paras], index.chunk_offsets[paras + 1]
        c_len = c_end - c_start
        crows = _ranges(c_start, c_end)
        ccos = index.store.cosines_at(crows, query_vector)
        best_c = _segment_argmax(ccos, c_len)
        has_c = c_len > 0  # every paragraph has a chunk; guard a damaged table anyway
        chunk_cos = np.where(has_c, ccos[best_c] if len(ccos) else 0.0, 0.0)
        if len(crows):
            clex = lex.at(crows)
            lexical = np.where(has_c, clex[_segment_argmax(clex, c_len)], 0.0)
        else:
            lexical = np.zeros(len(paras))
        # Sentence rows (float16, memory-mapped); a paragraph without any keeps its chunk cosine.
        s_start, s_end = index.sentence_offsets[paras], index.sentence_offsets[paras + 1]
        srows = _ranges(s_start, s_end)
        sent_cos = chunk_cos.copy()
        best_s = np.full(len(paras), -1, dtype=np.int64)
        if len(srows):
            scos = _float32(index.sentence_vectors[srows]) @ query_vector
            has = s_end > s_start
            arg = _segment_argmax(scos, s_end - s_start)
            sent_cos[has] = scos[arg[has]]
            best_s[has] = srows[arg[has]]
        best_chunk = np.where(has_c, crows[best_c] if len(crows) else -1, -1)
        return _Components(paras, (chunk_cos + sent_cos) / 2, lexical, best_chunk, best_s, gloss)

    def _with_gloss(self, question: Question, paras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates plus the best gloss matches, and the gloss BM25 of each candidate (0: off)."""
        terms = self.gloss_terms(question)
        if not terms:
            return paras, np.zeros(len(paras), dtype=np.float32)
        scores = self.index.gloss.scores(terms)
        depth = min(self.candidates, len(scores))
        if depth:
            top = np.argpartition(-scores, depth - 1)[:depth] if depth < len(scores) else np.arange(len(scores))
            paras = np.union1d(paras, top[scores[top] > 0])
        return paras, scores[paras]

    def _search_one(self, question: Question, query_vector: np.ndarray, k: int) -> list[Hit]:
        c = self._components(question, query_vector)
        if not len(c.paragraphs):
            return []
        fused = fuse(c.dense, c.lexical, self.weight_for(question), c.gloss, self.gloss_weight)
        ids = self.index.paragraphs.ids
        order = top_k(fused, [ids[p] for p in c.paragraphs.tolist()], k)
        hits = []
        for i in order:
            para = self.index.paragraphs.at(int(c.paragraphs[i]))
            title, source, date = self.index.documents.header(para.doc_id) or ("", "", None)
            dense = float(c.dense[i])
            hits.append(
                Hit(
                    para_id=para.para_id,
                    doc_id=para.doc_id,
                    text=para.text,
                    score=round(float(fused[i]), 6),
                    dense_score=round(dense, 6),
                    lexical_score=round(float(c.lexical[i]), 6),
                    title=title,
                    source=source,
                    date=date,
                    chunk_id=self.index.chunk_ids[int(c.best_chunk[i])] if c.best_chunk[i] >= 0 else None,
                    relevance=_rounded(relevance(question, para.text, dense, self.calibration)),
                    best_sentence=self.index.sentence_span(int(c.best_sentence[i])) if c.best_sentence[i] >= 0 else None,
                )
            )
        return hits


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


class _Components(NamedTuple):
    """Per candidate paragraph row: dense score, best BM25, best chunk row, best sentence row (-1: none)."""

    paragraphs: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray
    best_chunk: np.ndarray
    best_sentence: np.ndarray
    gloss: np.ndarray  # BM25 against the English gloss (zeros when the channel is off)

    @classmethod
    def empty(cls) -> _Components:
        z = np.zeros(0)
        return cls(z.astype(np.int64), z, z, z.astype(np.int64), z.astype(np.int64), z)


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, e)`` for each pair, without a Python loop."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    firsts = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return (firsts + np.arange(total)).astype(np.int64)


def _segment_argmax(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Index (into ``values``) of the largest value of each segment (the first on ties); segment
    ``i`` is the next ``lengths[i]`` values, as ``_ranges`` lays them out, so one
    ``maximum.reduceat`` pass finds the maxima. 0 for an empty segment (callers mask those)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(len(lengths), dtype=np.int64)
    if not len(values):
        return out
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    nonempty = lengths > 0
    best = np.maximum.reduceat(values, starts[nonempty])
    hits = np.flatnonzero(values == np.repeat(best, lengths[nonempty]))
    seg = np.repeat(np.arange(len(lengths)), lengths)[hits]
    first = np.ones(len(hits), dtype=bool)
    first[1:] = seg[1:] != seg[:-1]
    out[seg[first]] = hits[first]
    return out


def _float32(rows: np.ndarray) -> np.ndarray:
    """float16 rows as float32. torch converts with SIMD, far faster than numpy's ``astype``
    (benchmarks/README.md, "Scale"). On the torch thread, like all torch work
    (``rag/embedding/torch_thread.py``)."""
    if rows.dtype == np.float32:
        return rows
    try:
        import torch
    except ImportError:  # torch comes with the encoder; without it, numpy's way
        return rows.astype(np.float32)
    from rag.embedding.torch_thread import on_torch_thread

    rows = np.ascontiguousarray(rows)
    return on_torch_thread(lambda: torch.from_numpy(rows).float().numpy())
