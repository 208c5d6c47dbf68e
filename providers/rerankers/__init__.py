"""RERANKER providers: cross-encoder, embedding similarity, vLLM (shared logic in common)."""
