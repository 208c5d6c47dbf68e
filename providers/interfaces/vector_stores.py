"""VECTOR_STORE: keep documents with their embeddings and search them by similarity."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np


@dataclass
class VectorDocument:
    """A stored document: its text, its embedding and its metadata."""

    id: str
    content: str
    embedding: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class VectorSearchResult:
    """One hit of a search; higher ``score`` means more similar."""

    id: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    content: str = ""
    embedding: np.ndarray | None = None


class VectorStore(ABC):
    """Contract of a vector store (the seed's interface, method for method).

    Every method may do I/O and is async; ``filters`` is a metadata filter
    (equality, ``$in`` and ranges) whose exact operators the provider documents.
    """

    @abstractmethod
    async def initialize(self, config: dict[str, Any]) -> None:
        """Connect to (or start) the database described by ``config`` and ensure the collection."""

    @abstractmethod
    async def store_documents(self, documents: list[VectorDocument]) -> list[str]:
        """Upsert documents in one all-or-nothing batch; their ids, in input order."""

    @abstractmethod
    async def store_document(self, document: VectorDocument) -> str:
        """Upsert one document; its id."""

    @abstractmethod
    async def search_similar(
        self,
        query_embedding: np.ndarray,
        top_k: int = 10,
        filters: dict[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[VectorSearchResult]:
        """The ``top_k`` documents nearest ``query_embedding``, best first, above ``min_score``."""

    @abstractmethod
    async def hybrid_search(
        self,
        query_embedding: np.ndarray,
        text_query: str | None = None,
        top_k: int = 10,
        vector_weight: float = 0.7,
        filters: dict[str, Any] | None = None,
    ) -> list[VectorSearchResult]:
        """Vector similarity fused with full-text relevance of ``text_query`` by ``vector_weight``."""

    @abstractmethod
    async def get_document(self, document_id: str) -> VectorDocument | None:
        """The document with this id, or ``None`` if there is none."""

    @abstractmethod
    async def update_document(self, document: VectorDocument) -> bool:
        """Replace an existing document; ``False`` if its id is unknown."""

    @abstractmethod
    async def delete_document(self, document_id: str) -> bool:
        """Delete one document; ``False`` if its id is unknown."""

    @abstractmethod
    async def delete_documents(self, document_ids: list[str]) -> int:
        """Delete documents by id; how many were deleted."""

    @abstractmethod
    async def count_documents(self, filters: dict[str, Any] | None = None) -> int:
        """How many documents match ``filters`` (all of them when ``None``)."""

    @abstractmethod
    async def list_documents(
        self,
        limit: int = 100,
        offset: int = 0,
        filters: dict[str, Any] | None = None,
    ) -> list[VectorDocument]:
        """A page of documents matching ``filters``, in a stable order."""

    @abstractmethod
    async def create_index(self, index_params: dict[str, Any] | None = None) -> None:
        """Build (or rebuild) the vector index with ``index_params`` or the configured ones."""

    @abstractmethod
    async def search_by_ids(self, document_ids: list[str]) -> list[VectorDocument]:
        """The documents with these ids that exist, in input order."""

    @abstractmethod
    async def health_check(self) -> dict[str, Any]:
        """``{"status": "healthy" | "unhealthy", ...}``; never raises."""

    @abstractmethod
    async def get_stats(self) -> dict[str, Any]:
        """Counts, dimension, index type and settings, and storage size where known."""

    # -- registry extensions (not in the seed): what the embedding-space guard
    # and re-embedding need from every store.

    @abstractmethod
    async def get_embedding_space(self) -> dict[str, Any] | None:
        """The embedding space recorded for this collection (``provider``, ``model``,
        ``dimension``, ...), or ``None`` while nothing has claimed it."""

    @abstractmethod
    async def set_embedding_space(self, space: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        """Record ``space`` unless one is recorded already (first writer wins) or
        ``replace``; the space recorded afterwards. Durable, like the documents."""

    @abstractmethod
    async def list_documents_after(
        self,
        after_id: str | None = None,
        limit: int = 100,
        filters: dict[str, Any] | None = None,
    ) -> list[VectorDocument]:
        """Keyset paging: up to ``limit`` documents with ids greater than
        ``after_id``, in id order. Stable while others write, unlike offsets."""
