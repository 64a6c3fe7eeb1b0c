"""Milvus implementation of the store: Milvus Lite (a local file), a standalone server or a cluster.

Two collections hold the vectors of one index, both keyed by chunk id and carrying the doc id:

* ``<collection>``: the paragraph chunks, each with its lexical text — *our own* normalised tokens
  (OpenCC + jieba, see :mod:`rag.text.normalise`), space-joined — and a Milvus BM25 function over it
  (k1 = 1.2, b = 0.75, like :mod:`rag.store.lexical`). Milvus scores the same tokens the FAISS path
  scores, so a Simplified query finds Traditional text; the fusion stays ours.
* ``<collection>_dense``: rows added without a lexical text, which BM25 must not see: Milvus
  counts a row with an empty text in its document count and average length, which would shift
  every IDF away from what :class:`rag.store.lexical.BM25Index` computes. (The product writes only
  chunk rows; its per-sentence vectors live in the index's data folder, see :mod:`rag.index`.)

:meth:`MilvusStore.ids` lists the lexical rows first, then the others. Writes are upserts keyed by chunk id, so a re-indexed document replaces its
rows and several processes can write (different documents) while others search.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexStateError, InputError
from rag.store.base import VectorHits, check_queries
from rag.store.lexical import K1, B

SCHEMA_VERSION = 1
SCHEMA_PROPERTY = "rag.schema_version"
STORE_FILE = "milvus.json"
DEFAULT_COLLECTION = "rag_chunks"
DENSE_SUFFIX = "_dense"
MAX_TOPK = 16384  # Milvus' limit on limit (topk) for one search
_ID_LEN = 1024
_TEXT_LEN = 65535
_BATCH = 1000
_NON_WORD = re.compile(r"\W", re.UNICODE)

logging.getLogger("pymilvus").setLevel(logging.ERROR)  # per-call iterator warnings otherwise


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise IndexStateError(
            "RAG_STORE=milvus needs pymilvus (and milvus-lite for a local file): "
            "pip install 'rag-bilingual[milvus]'"
        ) from exc
    return pymilvus


def is_local_uri(uri: str) -> bool:
    """A file path (Milvus Lite) rather than an http(s)/tcp server address."""
    return "://" not in uri


def display_uri(uri: str) -> str:
    """The uri without any user:password part, safe to write into a manifest."""
    return re.sub(r"//[^/@]*@", "//", uri)


def lexical_text(tokens: Iterable[str]) -> str:
    """Tokens joined by spaces, each made of word characters only.

    Milvus Lite has no whitespace analyzer; its ``standard`` one splits on ``\\W`` and lower-cases.
    Our tokens are already case-folded, and replacing the few non-word characters inside a
    token (``3.5``, ``covid-19``) with ``_`` makes ``whitespace`` (server) and ``standard``
    (Lite) analysers yield exactly our tokens.
    """
    return " ".join(t for t in (_NON_WORD.sub("_", tok) for tok in tokens) if t)


def _quote(values: Sequence[str]) -> str:
    """A Milvus list literal of strings, each escaped: an id may hold ``'``, ``"``, ``\\`` or controls.

    Double-quoted with JSON escapes (``\\"``, ``\\\\``, ``\\n``, ``\\uXXXX``), which Milvus'
    expression parser reads back as the same string. pymilvus' own ``ids=`` arguments quote
    nothing, so every filter by id in this module goes through here.
    """
    return "[" + ", ".join(json.dumps(str(v), ensure_ascii=False) for v in values) + "]"


def id_filter(field: str, values: Sequence[str]) -> str:
    return f"{field} in {_quote(values)}"


class MilvusStore:
    """Vectors (and BM25 over our tokens) in Milvus; inner product over L2-normalised vectors."""

    def __init__(
        self,
        dim: int,
        *,
        uri: str,
        token: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        client: Any = None,
    ) -> None:
        if dim <= 0:
            raise InputError(f"dim must be positive, got {dim}")
        if not uri:
            raise InputError("RAG_MILVUS_URI is empty: give a file path (Milvus Lite) or http://host:19530")
        if is_local_uri(str(uri)) and not str(uri).endswith(".db"):
            raise InputError(f"a Milvus Lite path must end in .db (pymilvus needs it), got {uri!r}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", collection):
            raise InputError(f"milvus collection must be letters, digits and _, got {collection!r}")
        self.dim = dim
        self.uri = str(uri)
        self.token = token
        self.collection = collection
        self.dense_collection = collection + DENSE_SUFFIX
        self.analyzer = "standard" if is_local_uri(self.uri) else "whitespace"
        if client is None:
            pm = _pymilvus()
            if is_local_uri(self.uri):
                Path(self.uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
            try:
                client = pm.MilvusClient(uri=str(Path(self.uri).expanduser()) if is_local_uri(self.uri) else self.uri,
                                         token=token or "")
            except Exception as exc:
                hint = (
                    " — Milvus Lite lets one process open a file (is `rag serve` or `rag index` running on it?); "
                    "to share a store between processes run a Milvus server and set RAG_MILVUS_URI=http://host:19530"
                    if is_local_uri(self.uri) else ""
                )
                raise IndexStateError(f"cannot open Milvus at {display_uri(self.uri)}: {exc}{hint}") from exc
        self._client = client
        self._pinned: list[str] | None = None
        self._pinned_vectors: np.ndarray | None = None
        self._pinned_row: dict[str, int] | None = None
        self._ensure(self.collection, lexical=True)
        self._ensure(self.dense_collection, lexical=False)

    # -- schema ---------------------------------------------------------------------------
    def _ensure(self, name: str, *, lexical: bool) -> None:
        """Create the collection, or check that an existing one has our schema version and dim."""
        c = self._client
        if c.has_collection(name):
            info = c.describe_collection(name)
            version = (info.get("properties") or {}).get(SCHEMA_PROPERTY)
            dims = [int(f["params"]["dim"]) for f in info.get("fields", []) if f.get("name") == "vector"]
            fix = (
                "drop it, or choose another RAG_MILVUS_COLLECTION, then re-index with `rag index`"
            )
            if str(version) != str(SCHEMA_VERSION):
                raise IndexStateError(
                    f"Milvus collection {name!r} at {display_uri(self.uri)} has schema version {version}, "
                    f"this version uses {SCHEMA_VERSION}: {fix}"
                )
            if dims != [self.dim]:
                raise IndexStateError(
                    f"Milvus collection {name!r} at {display_uri(self.uri)} holds {dims[0] if dims else '?'}-d "
                    f"vectors, the model gives {self.dim}: {fix}"
                )
            c.load_collection(name)
            return
        pm = _pymilvus()
        dt = pm.DataType
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("chunk_id", dt.VARCHAR, is_primary=True, max_length=_ID_LEN)
        schema.add_field("para_id", dt.VARCHAR, max_length=_ID_LEN)
        schema.add_field("doc_id", dt.VARCHAR, max_length=_ID_LEN)
        schema.add_field("doc_key", dt.VARCHAR, max_length=128)
        schema.add_field("vector", dt.FLOAT_VECTOR, dim=self.dim)
        index = c.prepare_index_params()
        # FLAT: exact inner product, like FaissStore below its HNSW threshold. A cluster user
        # may re-index the field with HNSW/IVF; the schema version does not depend on it.
        index.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        if lexical:
            schema.add_field(
                "text", dt.VARCHAR, max_length=_TEXT_LEN, enable_analyzer=True,
                analyzer_params={"tokenizer": self.analyzer},
            )
            schema.add_field("sparse", dt.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                pm.Function(name="bm25", function_type=pm.FunctionType.BM25,
                            input_field_names=["text"], output_field_names=["sparse"])
            )
            bm25: dict[str, Any] = {"bm25_k1": K1, "bm25_b": B}
            if is_local_uri(self.uri):
                # pymilvus 3.0 sends these as top-level key/values, which a server reads but
                # Milvus Lite 3.2 ignores (it reads only a JSON "params" entry, and would use
                # k1 = 1.5): send both, or Lite's BM25 ranks differently from ours.
                bm25 = {**bm25, "params": dict(bm25)}
            index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=bm25)
        c.create_collection(
            name, schema=schema, index_params=index, consistency_level="Strong",
            properties={SCHEMA_PROPERTY: str(SCHEMA_VERSION)},
        )

    # -- contents -------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(self._count(n) for n in (self.collection, self.dense_collection))

    def _count(self, name: str, filter: str = "") -> int:
        rows = self._client.query(name, filter=filter, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def _all(self, name: str, fields: list[str], filter: str = "") -> list[dict[str, Any]]:
        if is_local_uri(self.uri):  # Lite answers a whole query (its iterator logs server errors)
            return list(self._client.query(name, filter=filter or 'chunk_id != ""', output_fields=fields))
        it = self._client.query_iterator(name, batch_size=_BATCH, filter=filter, output_fields=fields)
        out: list[dict[str, Any]] = []
        try:
            while batch := it.next():
                out.extend(batch)
        finally:
            it.close()
        return out

    def lexical_ids(self) -> list[str]:
        """The chunk rows (those BM25 scores), sorted."""
        return sorted(r["chunk_id"] for r in self._all(self.collection, ["chunk_id"]))

    def ids(self) -> list[str]:
        """Chunk rows first (sorted), then sentence rows (sorted): the retriever relies on it.

        After :meth:`pin`, the pinned snapshot instead (what a loaded index serves).
        """
        if self._pinned is not None:
            return list(self._pinned)
        return self.lexical_ids() + sorted(r["chunk_id"] for r in self._all(self.dense_collection, ["chunk_id"]))

    def pin(self, ids: Sequence[str], vectors: np.ndarray | None = None) -> None:
        """Serve this list as :meth:`ids` (an index snapshot) instead of scanning the collection.

        ``vectors`` (the snapshot's copy of their vectors) re-scores candidates without a query
        to Milvus per question; without it :meth:`cosines_at` fetches them.
        """
        if vectors is not None and len(vectors) != len(ids):
            raise ValueError(f"{len(vectors)} snapshot vectors for {len(ids)} rows")
        self._pinned = list(ids)
        self._pinned_vectors = vectors
        self._pinned_row = None

    def _row_of(self, chunk_id: str) -> int | None:
        """The pinned row of a chunk id (the lookup is built on first use)."""
        if self._pinned_row is None:
            self._pinned_row = {c: i for i, c in enumerate(self._pinned if self._pinned is not None else self.ids())}
        return self._pinned_row.get(chunk_id)

    def document_keys(self) -> dict[str, str]:
        """doc_id -> the content key its rows were written with (``doc_keys`` in :meth:`add`)."""
        out: dict[str, str] = {}
        for name in (self.collection, self.dense_collection):
            for r in self._all(name, ["doc_id", "doc_key"]):
                out.setdefault(r["doc_id"], r["doc_key"])
        return out

    def add(
        self,
        ids: Sequence[str],
        doc_ids: Sequence[str],
        vectors: np.ndarray,
        *,
        texts: Sequence[str | None] | None = None,
        para_ids: Sequence[str] | None = None,
        doc_keys: Sequence[str] | None = None,
    ) -> None:
        """Upsert rows; a row with a text (space-joined tokens) is BM25-scored, one without is not.

        An id already present is replaced, in whichever collection it was. ``doc_keys`` tags the
        rows with the content hash they were built from, so ingestion can skip unchanged documents.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InputError(f"vectors must have shape (n, {self.dim}), got {vectors.shape}")
        n = len(vectors)
        texts = list(texts) if texts is not None else [None] * n
        para_ids = list(para_ids) if para_ids is not None else [""] * n
        doc_keys = list(doc_keys) if doc_keys is not None else [""] * n
        if not (len(ids) == len(doc_ids) == n == len(texts) == len(para_ids) == len(doc_keys)):
            raise InputError("ids, doc_ids, vectors (and texts, para_ids) must have the same length")
        if len(set(ids)) != len(ids):
            raise InputError("duplicate ids in one add() call")
        lex: list[dict[str, Any]] = []
        dense: list[dict[str, Any]] = []
        for cid, did, pid, key, vec, text in zip(ids, doc_ids, para_ids, doc_keys, vectors.tolist(), texts, strict=True):
            row = {"chunk_id": cid, "doc_id": did, "para_id": pid, "doc_key": key, "vector": vec}
            if text is None:
                dense.append(row)
            else:
                if len(text.encode("utf-8")) > _TEXT_LEN:
                    raise InputError(f"lexical text of {cid} exceeds {_TEXT_LEN} bytes; lower RAG_CHUNK_MAX_CHARS")
                lex.append({**row, "text": text})
        for name, rows, other in ((self.collection, lex, self.dense_collection), (self.dense_collection, dense, self.collection)):
            for i in range(0, len(rows), _BATCH):
                batch = rows[i : i + _BATCH]
                self._client.upsert(name, batch)
                self._client.delete(other, filter=id_filter("chunk_id", [r["chunk_id"] for r in batch]))

    def sync_documents(
        self, doc_keys: dict[str, str], chunks: Sequence[Any], vectors: np.ndarray, tokens: Sequence[Sequence[str]]
    ) -> None:
        """Ingestion by document: rows of new or changed documents (``doc_keys``: doc_id ->
        content key) are written, rows of changed or vanished documents removed; unchanged
        documents are not touched. ``chunks`` are every chunk of the corpus, with their vectors
        and normalised tokens."""
        held = self.document_keys()
        stale = [d for d, k in held.items() if doc_keys.get(d) != k]
        if stale:
            self.delete_documents(stale)
        todo = {d for d in doc_keys if held.get(d) != doc_keys[d]}
        pick = [i for i, c in enumerate(chunks) if c.doc_id in todo]
        if pick:
            self.add(
                [chunks[i].chunk_id for i in pick],
                [chunks[i].doc_id for i in pick],
                vectors[pick],
                texts=[lexical_text(tokens[i]) for i in pick],
                para_ids=[chunks[i].para_id for i in pick],
                doc_keys=[doc_keys[chunks[i].doc_id] for i in pick],
            )

    def delete_documents(self, doc_ids: Sequence[str]) -> int:
        removed = 0
        for i in range(0, len(doc_ids), _BATCH):
            expr = id_filter("doc_id", list(doc_ids[i : i + _BATCH]))
            for name in (self.collection, self.dense_collection):
                n = self._count(name, expr)
                if n:
                    self._client.delete(name, filter=expr)
                    removed += n
        return removed

    def vectors_for(self, ids: Sequence[str]) -> np.ndarray:
        found = self.vectors_found(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(missing[0])
        return np.array([found[i] for i in ids], dtype=np.float32).reshape(len(ids), self.dim)

    def vectors_found(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those ids that exist (another process may have removed some)."""
        want = list(dict.fromkeys(ids))
        out: dict[str, np.ndarray] = {}
        for name in (self.collection, self.dense_collection):
            for i in range(0, len(want), _BATCH):
                batch = [w for w in want[i : i + _BATCH] if w not in out]
                if batch:
                    rows = self._client.query(name, filter=id_filter("chunk_id", batch),
                                              output_fields=["chunk_id", "vector"])
                    for r in rows:
                        out[r["chunk_id"]] = np.asarray(r["vector"], dtype=np.float32)
        return out

    # -- search ---------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> VectorHits:
        queries = check_queries(queries, self.dim, k)
        k = min(k, MAX_TOPK)
        merged: list[list[tuple[float, str]]] = [[] for _ in queries]
        for name in (self.collection, self.dense_collection):
            res = self._client.search(
                name, data=queries.tolist(), anns_field="vector", limit=k, output_fields=["chunk_id"],
                search_params={"metric_type": "IP"},
            )
            for q, hits in enumerate(res):
                merged[q].extend((float(h["distance"]), str(h["chunk_id"])) for h in hits)
        out_ids, out_scores = [], []
        for row in merged:
            row.sort(key=lambda t: (-t[0], t[1]))
            out_ids.append([c for _, c in row[:k]])
            out_scores.append([s for s, _ in row[:k]])
        return VectorHits(out_ids, out_scores)

    def search_rows(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` in pinned rows; -1 for a row this snapshot does not know (yet)."""
        hits = self.search(queries, k)
        width = max((len(r) for r in hits.ids), default=0)
        scores = np.zeros((len(hits.ids), width), dtype=np.float32)
        rows = np.full((len(hits.ids), width), -1, dtype=np.int64)
        for q, (ids, found) in enumerate(zip(hits.ids, hits.scores, strict=True)):
            scores[q, : len(found)] = found
            rows[q, : len(ids)] = [-1 if (r := self._row_of(c)) is None else r for c in ids]
        return scores, rows

    def cosines_at(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        if self._pinned_vectors is not None:
            return np.asarray(self._pinned_vectors[rows], dtype=np.float32) @ query
        pinned = self._pinned if self._pinned is not None else self.ids()
        ids = [pinned[r] for r in np.asarray(rows).tolist()]
        found = self.vectors_found(ids)
        return np.array([float(found[c] @ query) if c in found else -1.0 for c in ids], dtype=np.float32)

    def lexical_scores(
        self, tokens: Sequence[str], limit: int = MAX_TOPK, *, ids: Sequence[str] | None = None
    ) -> dict[str, float]:
        """Milvus BM25 over our tokens: chunk id -> score for the chunks that match any token.

        ``ids`` restricts the search to those chunks (their exact scores: the statistics are
        the collection's either way).
        """
        text = lexical_text(tokens)
        if not text or (ids is not None and not ids):
            return {}
        extra: dict[str, Any] = {}
        if ids is not None:
            ids = list(dict.fromkeys(ids))
            if len(ids) > MAX_TOPK:
                raise ValueError(f"at most {MAX_TOPK} ids per lexical search, got {len(ids)}")
            limit = len(ids)
            extra = {"filter": id_filter("chunk_id", ids)}  # Milvus Lite parses no filter templates
        res = self._client.search(
            self.collection, data=[text], anns_field="sparse", limit=min(limit, MAX_TOPK),
            output_fields=["chunk_id"], search_params={"metric_type": "BM25"}, **extra,
        )
        # Milvus Lite reports BM25 as a negative distance, a server as a positive score.
        return {str(h["chunk_id"]): abs(float(h["distance"])) for h in res[0] if h["distance"]}

    # -- persistence ----------------------------------------------------------------------
    def describe(self) -> dict[str, object]:
        return {
            "kind": "milvus",
            "schema_version": SCHEMA_VERSION,
            "uri": display_uri(self.uri),
            "collection": self.collection,
            "dense_collection": self.dense_collection,
            "index": "flat_ip",
            "dim": self.dim,
            "count": len(self),
            "bm25": {"k1": K1, "b": B, "analyzer": self.analyzer, "tokens": "rag.text.normalise"},
        }

    def save(self, folder: Path) -> list[str]:
        """Flush Milvus and write ``milvus.json`` (where the vectors live) into ``folder``."""
        for name in (self.collection, self.dense_collection):
            self._client.flush(name)
        info = {k: v for k, v in self.describe().items() if k != "count"}
        (Path(folder) / STORE_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
        return [STORE_FILE]

    @classmethod
    def load(
        cls, folder: Path, *, uri: str | None = None, token: str | None = None, collection: str | None = None
    ) -> MilvusStore:
        """Reopen the store a data folder names; ``uri``/``collection`` override it (settings win)."""
        path = Path(folder) / STORE_FILE
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexStateError(f"cannot read {path} ({exc}); rebuild the index with `rag index`") from exc
        if info.get("schema_version") != SCHEMA_VERSION:
            raise IndexStateError(
                f"{path} records Milvus schema version {info.get('schema_version')}, this version uses "
                f"{SCHEMA_VERSION}; re-index with `rag index`"
            )
        return cls(
            int(info["dim"]), uri=uri or info["uri"], token=token, collection=collection or info["collection"]
        )

    def close(self) -> None:
        self._client.close()


class MilvusBM25:
    """The :class:`rag.store.lexical.BM25Index` interface, answered by Milvus' BM25 over our tokens."""

    def __init__(self, store: MilvusStore, ids: Sequence[str] | None = None) -> None:
        self.store = store
        self.ids: Sequence[str] = store.lexical_ids() if ids is None else ids
        self._row = {cid: r for r, cid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def _lexical(self, query_tokens: list[str], **kwargs: Any) -> dict[str, float]:
        """Milvus' BM25 scores as :class:`rag.store.lexical.BM25Index` gives them: Milvus multiplies
        each term by ``k1 + 1`` where bm25s' Lucene variant does not, so it is divided out."""
        return {cid: s / (K1 + 1.0) for cid, s in self.store.lexical_scores(query_tokens, **kwargs).items()}

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every row for one tokenised query (zeros where no term matches)."""
        out = np.zeros(len(self.ids), dtype=np.float32)
        if not self.ids or not query_tokens:
            return out
        for cid, score in self._lexical(query_tokens).items():
            row = self._row.get(cid)
            if row is not None:  # a chunk added after this snapshot is not servable yet
                out[row] = score
        return out

    def top(self, query_tokens: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best-scoring rows of this snapshot and their scores (one small search)."""
        found = self._lexical(query_tokens, limit=n) if self.ids and query_tokens else {}
        pairs = [(self._row[c], v) for c, v in found.items() if c in self._row]
        rows = np.array([r for r, _ in pairs], dtype=np.int64)
        return rows, np.array([v for _, v in pairs], dtype=np.float32)

    def scores_at(self, query_tokens: list[str], rows: np.ndarray) -> np.ndarray:
        """Exact scores of these rows only (a filtered search), in order; 0 where no term matches."""
        out = np.zeros(len(rows), dtype=np.float32)
        if not len(rows) or not query_tokens:
            return out
        ids = [self.ids[r] for r in rows.tolist()]
        found: dict[str, float] = {}
        for i in range(0, len(ids), 4096):
            found.update(self._lexical(query_tokens, ids=ids[i : i + 4096]))
        for i, cid in enumerate(ids):
            if cid in found:
                out[i] = found[cid]
        return out

    def search(self, tokens: list[str], depth: int) -> _MilvusLexicalHits:
        """The ``depth`` best rows (one small search); other rows are scored by a filtered search."""
        rows, scores = self.top(tokens, depth)
        return _MilvusLexicalHits(rows[scores > 0], self, tokens)

    def save(self, folder: Path) -> list[str]:
        """Nothing to write: the BM25 state lives in the Milvus collection."""
        return []

    def describe(self) -> dict[str, object]:
        return {"library": "milvus", "k1": K1, "b": B, "method": "milvus-bm25", "rows": len(self.ids)}


class _MilvusLexicalHits:
    """:class:`rag.store.base.LexicalHits` of Milvus: exact scores of chosen rows on demand.

    Asking Milvus for every matching row instead is far slower (benchmarks/README.md,
    "Figures behind the code").
    """

    def __init__(self, rows: np.ndarray, bm25: MilvusBM25, tokens: list[str]) -> None:
        self.rows = rows
        self._bm25 = bm25
        self._tokens = tokens

    def at(self, rows: np.ndarray) -> np.ndarray:
        return self._bm25.scores_at(self._tokens, rows)


def settings_uri(settings: Any, index_dir: Path) -> str:
    """RAG_MILVUS_URI, or a Milvus Lite file inside the index folder when it is unset."""
    return settings.milvus_uri or str(Path(index_dir) / "milvus.db")


def open_for(settings: Any, index_dir: Path, dim: int) -> MilvusStore:
    """The store the settings name (created on first use), for ``rag index``."""
    return MilvusStore(
        dim, uri=settings_uri(settings, index_dir), token=settings.milvus_token, collection=settings.milvus_collection
    )
