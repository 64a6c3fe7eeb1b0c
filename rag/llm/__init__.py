"""The optional offline language model (``RAG_LLM=local``): weights, engine, judge."""
