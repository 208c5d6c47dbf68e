"""Reranking by cosine similarity of embeddings from another provider.

No model of its own: it asks the embeddings provider named by ``embedder``
(through the registry, so on Ray Serve the calls get that provider's
deadlines, fallback chain and breaker) for the query's and the documents'
vectors, and scores each document by its cosine with the query. Cheaper than
a cross-encoder and no better than the first-stage vector search when that
search used the same model; it earns its place reranking candidates found
by other means (keyword search, graph walks) or a different embedder.

Declare the dependency in providers.yaml so the registry knows it::

    rerankers:
      providers:
        cosine:
          class: providers.rerankers.embedding_similarity.EmbeddingSimilarityReranker
          config: {embedder: minilm}
          depends_on: [embeddings/minilm]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from providers.config_base import NAME_PATTERN, parse_provider_config
from providers.errors import ProviderCallError
from providers.registry.dependencies import resolver_of
from providers.rerankers.common import RerankerBase, RerankerConfig
from providers.types import ProviderType


class EmbeddingSimilarityConfig(RerankerConfig):
    embedder: str = Field(..., pattern=NAME_PATTERN, description="Name of the embeddings provider to use.")


class EmbeddingSimilarityReranker(RerankerBase):
    def __init__(self) -> None:
        super().__init__()
        self.registry: Any = None  # set by the host before initialize (see registry.dependencies)
        self.embedder: Any = None

    async def initialize(self, config: dict[str, Any]) -> None:
        self.settings = s = parse_provider_config(EmbeddingSimilarityConfig, config)
        resolver_of(self, f"the embeddings provider {s.embedder!r}")  # fail now if there is no registry
        self.embedder = None  # looked up on first use: the embedder may start after this reranker

    async def _score(self, query: str, documents: list[str]) -> list[float]:
        if self.embedder is None:
            registry = resolver_of(self, f"the embeddings provider {self.settings.embedder!r}")
            self.embedder = await registry.get_provider_with_fallback(ProviderType.EMBEDDING, self.settings.embedder)
        q = np.asarray(await self.embedder.embed_query(query), dtype=np.float32).reshape(-1)
        # Vectors may come back as arrays (in process) or lists (through the router).
        docs = np.asarray(await self.embedder.embed_texts(documents), dtype=np.float32)
        if docs.ndim != 2 or docs.shape[0] != len(documents) or docs.shape[1] != q.size:
            name = getattr(self.settings, "embedder", "?")
            raise ProviderCallError(f"embedder {name!r} returned vectors of shape {docs.shape} "
                                    f"for {len(documents)} documents and a {q.size}-d query")
        return cosine(q, docs).tolist()

    async def health_check(self) -> dict[str, Any]:
        """Its own state only: scoring would call the embedder through the router,
        so one embedder outage (or a start before the router is up) would fail
        this replica's Serve health check and restart it for nothing. The
        embedder has its own health check."""
        if not isinstance(self.settings, EmbeddingSimilarityConfig):
            return {"status": "unhealthy", "reranker_type": self.get_reranker_type(), "error": "not initialized"}
        return {"status": "healthy", "reranker_type": self.get_reranker_type(), **self._health_details()}

    def get_reranker_type(self) -> str:
        return "embedding_similarity"

    def supports_batch_reranking(self) -> bool:
        return True  # one embed_texts call for all documents

    def _health_details(self) -> dict[str, Any]:
        return {"embedder": getattr(self.settings, "embedder", None), "embedder_resolved": self.embedder is not None}


def cosine(query: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``docs`` with ``query``; 0 where either vector is zero.

    Computed in full rather than as a dot product: not every embedder
    returns unit vectors (``normalize_embeddings: false``, remote servers).
    """
    qn = float(np.linalg.norm(query))
    dn = np.linalg.norm(docs, axis=1)
    denom = dn * qn
    dots = docs @ query
    return np.where(denom > 0, dots / np.where(denom > 0, denom, 1.0), 0.0).astype(np.float64)
