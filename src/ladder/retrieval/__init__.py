"""Retrieval: embeddings (offline MiniLM) and, with the rag extra, chunking and indexes."""
