"""BM25 statistics that survive an update: per-row term counts over one vocabulary.

bm25s precomputes every (row, term) score, and each score depends on global statistics (the
row count, each term's document frequency and the mean row length), so one changed row moves
every score. :class:`BM25State` keeps what the scores are computed from: for each row its
terms and their counts (CSR). An update takes the rows it keeps, appends the rows of new text
(only that text is tokenised), and :meth:`BM25State.retriever` recomputes the whole score
matrix from the global statistics in a few vectorised passes, with the same float operations in
the same order as ``bm25s.BM25.index`` (lucene variant): the scores equal a fresh build's.

Any lexical index over its own token stream (one state per channel) can use it.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rag.errors import IndexStateError

STATE_FILES = ("state_indptr.npy", "state_terms.npy", "state_counts.npy", "state_vocab.json")


class BM25State:
    """Rows of (term id, count) pairs: row ``i`` owns ``terms[indptr[i]:indptr[i+1]]``."""

    def __init__(self, vocab: list[str], indptr: np.ndarray, terms: np.ndarray, counts: np.ndarray) -> None:
        self.vocab = vocab
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.terms = np.asarray(terms, dtype=np.int32)
        self.counts = np.asarray(counts, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def empty(cls) -> BM25State:
        return cls([], np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32))

    # -- building --------------------------------------------------------------------------
    def with_rows(self, tokens: Iterable[Sequence[str]]) -> BM25State:
        """A state over this vocabulary (extended by unseen terms) holding only rows of ``tokens``.

        Its term ids agree with this state's, so :meth:`concat` can join it with rows taken from
        this state. ``tokens`` is read one row at a time (each kept only as its term counts).
        """
        vocab = list(self.vocab)
        ids = {t: i for i, t in enumerate(vocab)}
        # arrays, not lists: 4 or 8 bytes an entry (a list holds a pointer and an int object)
        indptr = array("q", [0])
        terms = array("i")
        counts = array("i")
        for row in tokens:
            tally: dict[int, int] = {}
            for tok in row:
                tid = ids.get(tok)
                if tid is None:
                    tid = ids[tok] = len(vocab)
                    vocab.append(tok)
                tally[tid] = tally.get(tid, 0) + 1
            terms.extend(tally)
            counts.extend(tally.values())
            indptr.append(len(terms))
        return BM25State(vocab, np.frombuffer(indptr, np.int64), _int32(terms), _int32(counts))

    @classmethod
    def from_tokens(cls, tokens: Iterable[Sequence[str]]) -> BM25State:
        return cls.empty().with_rows(tokens)

    def take(self, rows: np.ndarray) -> BM25State:
        """The given rows, in that order (same vocabulary)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and rows[-1] - rows[0] + 1 == len(rows) and (len(rows) == 1 or np.all(np.diff(rows) == 1)):
            a, b = int(self.indptr[rows[0]]), int(self.indptr[rows[-1] + 1])  # one run: slices, no gather
            return BM25State(self.vocab, self.indptr[rows[0] : rows[-1] + 2] - a, self.terms[a:b], self.counts[a:b])
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        picks = _ranges(starts, ends)
        return BM25State(self.vocab, indptr, self.terms[picks], self.counts[picks])

    @staticmethod
    def concat(parts: Sequence[BM25State]) -> BM25State:
        """Rows of ``parts`` one after the other; the last part's vocabulary must extend the others'."""
        if not parts:
            return BM25State.empty()
        vocab = max((p.vocab for p in parts), key=len)
        for p in parts:
            if vocab[: len(p.vocab)] != p.vocab:
                raise ValueError("BM25 states over unrelated vocabularies")
        lengths = np.concatenate([np.diff(p.indptr) for p in parts])
        indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        return BM25State(vocab, indptr, np.concatenate([p.terms for p in parts]),
                         np.concatenate([p.counts for p in parts]))

    @staticmethod
    def interleave(old: BM25State, old_rows: np.ndarray, new: BM25State) -> BM25State:
        """Row ``i`` is ``old``'s row ``old_rows[i]`` where that is >= 0, else ``new``'s next row.

        ``new`` must come from ``old.with_rows`` (its vocabulary extends ``old``'s) and hold one
        row for each negative entry of ``old_rows``.
        """
        old_rows = np.asarray(old_rows, dtype=np.int64)
        kept = old_rows >= 0
        if int((~kept).sum()) != len(new):
            raise ValueError(f"{int((~kept).sum())} rows to fill from {len(new)} new rows")
        if new.vocab[: len(old.vocab)] != old.vocab:
            raise ValueError("BM25 states over unrelated vocabularies")
        src = old_rows[kept]
        lengths = np.empty(len(old_rows), dtype=np.int64)
        lengths[kept] = old.indptr[src + 1] - old.indptr[src]
        lengths[~kept] = np.diff(new.indptr)
        indptr = np.zeros(len(old_rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        terms = np.empty(int(indptr[-1]), dtype=np.int32)
        counts = np.empty(int(indptr[-1]), dtype=np.int32)
        # Runs of consecutive old rows (or of new rows) are copied as slices: an update keeps
        # long runs, and a slice copy is several times faster than a gather of every entry.
        step = np.diff(old_rows)
        breaks = np.flatnonzero((kept[1:] != kept[:-1]) | (kept[1:] & (step != 1))) + 1
        fresh_start = 0
        starts = [0, *breaks.tolist()] if len(old_rows) else []
        for a, b in zip(starts, [*starts[1:], len(old_rows)][: len(starts)], strict=True):
            out_a, out_b = int(indptr[a]), int(indptr[b])
            if kept[a]:
                src_a = int(old.indptr[old_rows[a]])
                terms[out_a:out_b] = old.terms[src_a : src_a + out_b - out_a]
                counts[out_a:out_b] = old.counts[src_a : src_a + out_b - out_a]
            else:
                src_a = int(new.indptr[fresh_start])
                terms[out_a:out_b] = new.terms[src_a : src_a + out_b - out_a]
                counts[out_a:out_b] = new.counts[src_a : src_a + out_b - out_a]
                fresh_start += b - a
        return BM25State(new.vocab, indptr, terms, counts)

    def compact(self) -> BM25State:
        """The same rows over only the terms they use (terms of removed rows dropped)."""
        used = np.zeros(len(self.vocab), dtype=bool)
        used[self.terms] = True
        if used.all():
            return self
        remap = np.cumsum(used) - 1
        vocab = [t for t, u in zip(self.vocab, used.tolist(), strict=True) if u]
        return BM25State(vocab, self.indptr, remap[self.terms].astype(np.int32), self.counts)

    # -- scores ----------------------------------------------------------------------------
    def lengths(self) -> np.ndarray:
        """Tokens per row (the BM25 document length)."""
        cumulative = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
        return cumulative[self.indptr[1:]] - cumulative[self.indptr[:-1]]

    def retriever(self, k1: float, b: float) -> Any:  # bm25s is untyped
        """A ``bm25s.BM25`` (lucene variant) whose score matrix is computed from these rows."""
        import bm25s
        from scipy.sparse import csr_matrix

        state = self.compact()
        n_docs, n_vocab = len(state), len(state.vocab)
        dl = state.lengths()
        avg_doc_len = dl.mean()  # as bm25s: the mean of an integer array, in float64
        df = np.bincount(state.terms, minlength=n_vocab)
        idf = np.zeros(n_vocab, dtype=np.float32)
        for t, d in enumerate(df.tolist()):  # math.log as bm25s, value by value
            if d:
                idf[t] = math.log(1 + (n_docs - d + 0.5) / (d + 0.5))
        # bm25s: idf * (tf / (k1 * ((1 - b) + b * dl / avgdl) + tf)) in float64 (tf and idf as
        # float32 first), then float32. The same operations on the same values, done in place,
        # with the length factor made once per row: the same bits, a third of the memory traffic.
        tf = state.counts.astype(np.float64)  # counts are exact in float32
        work = np.repeat(k1 * ((1 - b) + b * dl / avg_doc_len), np.diff(state.indptr))
        work += tf
        np.divide(tf, work, out=work)
        del tf
        work *= idf.astype(np.float64)[state.terms]
        scores = work.astype(np.float32)
        del work
        # By column (term), rows ascending in each, as bm25s stores them: CSR -> CSC is one
        # counting pass (a stable argsort of 26M entries, the gloss at 100k paragraphs, takes seconds).
        csc = csr_matrix((scores, state.terms, state.indptr), shape=(n_docs, n_vocab)).tocsc()
        retriever = bm25s.BM25(k1=k1, b=b)
        retriever.scores = {"data": csc.data, "indices": csc.indices.astype(np.int32, copy=False),
                            "indptr": csc.indptr.astype(np.int64, copy=False), "num_docs": n_docs}
        vocab_dict = {t: i for i, t in enumerate(state.vocab)}
        if "" not in vocab_dict:
            vocab_dict[""] = n_vocab  # as bm25s.BM25.index(create_empty_token=True)
        retriever.vocab_dict = vocab_dict
        retriever.unique_token_ids_set = set(vocab_dict.values())
        retriever.nonoccurrence_array = None
        return retriever

    # -- persistence -----------------------------------------------------------------------
    def save(self, folder: Path) -> list[str]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = self.compact()
        np.save(folder / STATE_FILES[0], state.indptr)
        # The smallest integer type that holds them (read back as int32): less to write and hash.
        np.save(folder / STATE_FILES[1], _narrow(state.terms, len(state.vocab) - 1))
        np.save(folder / STATE_FILES[2], _narrow(state.counts, int(state.counts.max()) if len(state.counts) else 0))
        (folder / STATE_FILES[3]).write_text(json.dumps(state.vocab, ensure_ascii=False), encoding="utf-8")
        return list(STATE_FILES)

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = False) -> BM25State:
        """The state saved in ``folder``; ``mmap``: the arrays memory-mapped (read as rows are taken)."""
        folder = Path(folder)
        mode: Literal["r"] | None = "r" if mmap else None
        try:
            indptr = np.load(folder / STATE_FILES[0], mmap_mode=mode)
            terms = np.load(folder / STATE_FILES[1], mmap_mode=mode)
            counts = np.load(folder / STATE_FILES[2], mmap_mode=mode)
            vocab = json.loads((folder / STATE_FILES[3]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexStateError(f"cannot read the BM25 state in {folder}: {exc}; rebuild with `rag index`") from exc
        if len(terms) != len(counts) or indptr[-1] != len(terms) or (len(terms) and terms.max() >= len(vocab)):
            raise IndexStateError(f"the BM25 state in {folder} is inconsistent; rebuild with `rag index`")
        return cls(vocab, indptr, terms, counts)


def _narrow(values: np.ndarray, largest: int) -> np.ndarray:
    for dtype in (np.uint8, np.uint16):
        if largest <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values


def _int32(values: array) -> np.ndarray:
    return np.frombuffer(values, np.int32) if len(values) else np.zeros(0, np.int32)


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, e)`` for each pair, vectorised."""
    lengths = ends - starts
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets
