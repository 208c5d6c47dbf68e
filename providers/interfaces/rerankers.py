"""RERANKER: reorder search candidates by relevance to a query."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RerankCandidate:
    """A candidate to rerank, with the score its first-stage search gave it."""

    id: str
    content: str
    original_score: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RerankResult:
    """A reranked candidate; results are ordered by ``final_score``, best first."""

    id: str
    content: str
    original_score: float
    rerank_score: float
    final_score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    explanation: str | None = None


class Reranker(ABC):
    """Contract of a reranker (the seed's interface, method for method).

    Async methods may do I/O or model compute; the sync ones answer from
    state loaded by ``initialize`` and must be cheap.
    """

    @abstractmethod
    async def initialize(self, config: dict[str, Any]) -> None:
        """Load the model or resolve the dependencies described by ``config``."""

    @abstractmethod
    async def rerank(
        self,
        query: str,
        candidates: list[RerankCandidate],
        top_k: int | None = None,
    ) -> list[RerankResult]:
        """Candidates scored against ``query``, best first, at most ``top_k`` (all when ``None``)."""

    @abstractmethod
    async def score_pair(self, query: str, document: str) -> float:
        """Relevance of one document to the query."""

    @abstractmethod
    def get_reranker_type(self) -> str:
        """Kind of reranker, e.g. "cross_encoder", "embedding_similarity", "vllm"."""

    @abstractmethod
    def supports_batch_reranking(self) -> bool:
        """Whether scoring many pairs at once is cheaper than one by one."""

    @abstractmethod
    def get_max_candidates(self) -> int:
        """Most candidates one ``rerank`` call accepts."""

    @abstractmethod
    async def health_check(self) -> dict[str, Any]:
        """``{"status": "healthy" | "unhealthy", ...}``; never raises."""

    @abstractmethod
    async def rerank_with_fusion(
        self,
        query: str,
        candidates: list[RerankCandidate],
        fusion_method: str = "rrf",
        top_k: int | None = None,
    ) -> list[RerankResult]:
        """Rerank, then fuse rerank and original scores ("rrf" or "weighted") into ``final_score``."""

    @abstractmethod
    async def batch_score_pairs(self, query: str, documents: list[str]) -> list[float]:
        """Relevance of each document to the query, in input order."""
