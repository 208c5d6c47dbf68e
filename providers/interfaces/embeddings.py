"""EMBEDDING: turn texts into vectors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class EmbeddingProvider(ABC):
    """Contract of an embedding provider (the seed's interface, method for method).

    Async methods may do I/O or heavy compute; the sync ones answer from state
    loaded by ``initialize`` and must be cheap, because the registry reads them
    once when it describes a provider.
    """

    @abstractmethod
    async def initialize(self, config: dict[str, Any]) -> None:
        """Load the model or open the client described by ``config``."""

    @abstractmethod
    async def embed_texts(self, texts: list[str], batch_size: int = 32) -> list[np.ndarray]:
        """Embed documents; one float32 vector per text, in input order."""

    @abstractmethod
    async def embed_query(self, query: str) -> np.ndarray:
        """Embed one search query (models such as e5 prefix queries differently)."""

    @abstractmethod
    def get_dimension(self) -> int:
        """Length of every vector this provider returns."""

    @abstractmethod
    def supports_gpu(self) -> bool:
        """Whether this provider can run on (and is configured for) a GPU."""

    @abstractmethod
    def get_model_name(self) -> str:
        """The model identifier, as configured."""

    @abstractmethod
    async def health_check(self) -> dict[str, Any]:
        """``{"status": "healthy" | "unhealthy", ...}``; never raises."""
