"""Reranking by Cohere's ``POST /v2/rerank`` (or ``/v1/rerank``), or any server that speaks it.

Cohere's own API, or this registry's Cohere-shaped endpoints (another
registry's reranker, say). The server scores every document of a call
(``top_n`` is the number sent), so the scores come back for all of them
and `RerankerBase` orders, cuts and fuses as it does for every reranker.
Cohere's ``relevance_score`` already lies in 0..1, so ``normalization``
stays "none" by default. Documents go in calls of at most
``max_documents_per_request``: a relevance score is a property of one
(query, document) pair, so splitting changes no score.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from providers._cohere import CohereConnectionConfig, CohereHTTP, malformed
from providers.config_base import parse_provider_config
from providers.errors import not_initialized
from providers.rerankers.common import RerankerBase, RerankerConfig

OWNER = "Cohere reranker"


class CohereRerankConfig(CohereConnectionConfig, RerankerConfig):
    max_documents_per_request: int = Field(
        1000, ge=1, description="Most documents in one HTTP request (Cohere allows 1000).")


class CohereReranker(RerankerBase):
    """A `Reranker` over Cohere's rerank API; one HTTP pool per replica."""

    def __init__(self) -> None:
        super().__init__()
        self.http: CohereHTTP | None = None

    def __repr__(self) -> str:
        s = self.settings
        if isinstance(s, CohereRerankConfig):
            return f"CohereReranker(model={s.model!r}, base_url={s.base_url!r})"
        return "CohereReranker()"

    async def initialize(self, config: dict[str, Any]) -> None:
        self.settings = s = parse_provider_config(CohereRerankConfig, config)
        self.http = CohereHTTP(OWNER, s)

    async def _score(self, query: str, documents: list[str]) -> list[float]:
        if self.http is None or not isinstance(self.settings, CohereRerankConfig):
            raise not_initialized(OWNER)
        step = self.settings.max_documents_per_request
        scores: list[float] = []
        for i in range(0, len(documents), step):
            part = documents[i : i + step]
            answer = await self.http.post("rerank", rerank_request(self.settings.model, query, part))
            scores.extend(decode_scores(answer, len(part)))
        return scores

    def get_reranker_type(self) -> str:
        return "cohere"

    def supports_batch_reranking(self) -> bool:
        return True  # one HTTP request for up to max_documents_per_request documents

    def _health_details(self) -> dict[str, Any]:
        s = self.settings
        if not isinstance(s, CohereRerankConfig):
            return {}
        return {"model_name": s.model, "base_url": s.base_url, "api_version": s.api_version}

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()


def rerank_request(model: str, query: str, documents: list[str]) -> dict[str, Any]:
    """One rerank call's body (the same keys in v1 and v2): every document scored, no text echoed."""
    return {"model": model, "query": query, "documents": documents, "top_n": len(documents)}


def decode_scores(body: Any, expected: int) -> list[float]:
    """``results: [{index, relevance_score}]`` (best first) as scores in input order.

    Every index from 0 to ``expected - 1`` once, each score a finite number;
    anything else is a failing server, not data.
    """
    try:
        results = body["results"]
        if not isinstance(results, list):
            raise TypeError(f"results must be a list, got {type(results).__name__}")
        scores: dict[int, float] = {}
        for item in results:
            index, score = item["index"], item["relevance_score"]
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < expected:
                raise ValueError(f"index {index!r} is not one of 0..{expected - 1}")
            if index in scores:
                raise ValueError(f"index {index} appears twice")
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                raise ValueError(f"relevance_score {score!r} of index {index} is not a finite number")
            scores[index] = float(score)
        if len(scores) != expected:
            raise ValueError(f"{len(scores)} results for {expected} documents")
    except (KeyError, TypeError, ValueError) as exc:
        raise malformed(OWNER, exc) from exc
    return [scores[i] for i in range(expected)]
