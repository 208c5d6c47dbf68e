"""Provider classes that live outside ``providers.``, for the module allowlist tests.

``WordCountEmbedder`` is a complete (tiny) embedding provider: loading it
proves that a prefix from ``registry.allowed_module_prefixes`` lets a class
from another package through. The broken classes exist to be refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from providers.interfaces.embeddings import EmbeddingProvider


class WordCountEmbedder(EmbeddingProvider):
    """Two-dimensional vectors: (number of words, number of characters)."""

    async def initialize(self, config: dict[str, Any]) -> None:
        self.label = str(config.get("label", "wordcount"))

    async def embed_texts(self, texts: list[str], batch_size: int = 32) -> list[np.ndarray]:
        return [np.array([len(t.split()), len(t)], dtype=np.float32) for t in texts]

    async def embed_query(self, query: str) -> np.ndarray:
        return (await self.embed_texts([query]))[0]

    def get_dimension(self) -> int:
        return 2

    def supports_gpu(self) -> bool:
        return False

    def get_model_name(self) -> str:
        return self.label

    async def health_check(self) -> dict[str, Any]:
        return {"status": "healthy"}


class HalfEmbedder:
    """Duck-typed, but only half of the interface."""

    async def initialize(self, config: dict[str, Any]) -> None:
        pass

    async def embed_texts(self, texts: list[str], batch_size: int = 32) -> list[np.ndarray]:
        return []


NOT_A_CLASS = "a string, not a class"
