"""What every reranker checks and computes the same way.

A reranker only has to say how it scores (query, document) pairs
(`RerankerBase._score`); the rest lives here so all rerankers validate,
normalize, order and fuse alike:

* input checks happen before any model work and name the offending field
  (``candidates[3].content``), as the vector stores do;
* ordering is by score, ties kept in input order (a stable sort), so equal
  scores never shuffle between calls;
* fusion: ``rrf`` adds ``1 / (k + rank)`` of the rank by rerank score and the
  rank by original score (k = 60, Cormack et al.); ``weighted`` min-max
  normalizes both score lists over the candidates and mixes them with
  ``fusion_weight`` (on the rerank score) and ``1 - fusion_weight``.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from typing import Any, Literal

import numpy as np
from pydantic import Field

from providers.config_base import ProviderConfig
from providers.errors import InvalidRequestError, ProviderCallError
from providers.interfaces.rerankers import RerankCandidate, Reranker, RerankResult
from providers.registry.coalescing import Coalescer

NORMALIZATIONS = ("none", "sigmoid", "minmax")
FUSION_METHODS = ("rrf", "weighted")
_CANDIDATE_FIELDS = {"id", "content", "original_score", "metadata"}


class RerankerConfig(ProviderConfig):
    """Keys every reranker understands (each reranker adds its own)."""

    max_candidates: int = Field(1000, ge=1, le=100_000, description="Most candidates one rerank call accepts.")
    fusion_weight: float = Field(
        0.7, ge=0.0, le=1.0,
        description="Weight of the rerank score in 'weighted' fusion (the original score gets the rest).")
    rrf_k: int = Field(60, ge=1, description="The k of reciprocal-rank fusion.")
    batch_wait_s: float = Field(
        0.005, ge=0, le=1,
        description="Dynamic batching: longest a scoring call waits to join the pairs of concurrent calls "
        "in one model call while another is running (0: off). A lone call never waits.")
    max_batch_pairs: int = Field(256, ge=1, description="Most (query, document) pairs in one merged model call.")
    normalization: Literal["none", "sigmoid", "minmax"] = Field(
        "none",
        description="Applied to raw scores: 'sigmoid' maps cross-encoder logits to 0..1; 'minmax' "
        "rescales each call's scores to 0..1 (relative to that call's documents only).")


# -- input checks ---------------------------------------------------------------------------


def check_query(query: Any, where: str = "query") -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequestError("must be a non-empty string", where)
    return query


def as_candidate(raw: Any, where: str) -> RerankCandidate:
    """A validated `RerankCandidate` from one (or from a dict with its fields, as JSON callers send)."""
    if isinstance(raw, RerankCandidate):
        cand = raw
    elif isinstance(raw, dict):
        unknown = set(raw) - _CANDIDATE_FIELDS
        if unknown:
            raise InvalidRequestError(f"unknown field(s) {sorted(unknown)}", where)
        if "id" not in raw or "content" not in raw:
            missing = sorted({"id", "content"} - set(raw))
            raise InvalidRequestError(f"missing field(s) {missing}", where)
        cand = RerankCandidate(id=raw["id"], content=raw["content"],
                               original_score=raw.get("original_score", 0.0),
                               metadata=raw.get("metadata") or {})
    else:
        raise InvalidRequestError(f"must be a RerankCandidate or an object, got {type(raw).__name__}", where)
    if not isinstance(cand.id, str) or not cand.id:
        raise InvalidRequestError("must be a non-empty string", f"{where}.id")
    if not isinstance(cand.content, str):
        raise InvalidRequestError(f"must be a string, got {type(cand.content).__name__}", f"{where}.content")
    score = cand.original_score
    # bool is an int subclass; True as a score is a caller's bug, not 1.0
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise InvalidRequestError("must be a finite number", f"{where}.original_score")
    metadata = {} if cand.metadata is None else cand.metadata
    if not isinstance(metadata, dict):
        raise InvalidRequestError(f"must be an object, got {type(metadata).__name__}", f"{where}.metadata")
    return RerankCandidate(cand.id, cand.content, float(score), metadata)


def check_candidates(candidates: Any, limit: int, where: str = "candidates") -> list[RerankCandidate]:
    if isinstance(candidates, (RerankCandidate, dict, str)) or not isinstance(candidates, (list, tuple)):
        raise InvalidRequestError(f"must be a list of candidates, got {type(candidates).__name__}", where)
    if len(candidates) > limit:
        raise InvalidRequestError(f"has {len(candidates)} candidates; the limit is {limit} (config.max_candidates)", where)
    return [as_candidate(c, f"{where}[{n}]") for n, c in enumerate(candidates)]


def check_top_k(top_k: Any, where: str = "top_k") -> int | None:
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidRequestError("must be a positive integer or null", where)
    return top_k


def check_documents(documents: Any, limit: int, where: str = "documents") -> list[str]:
    if isinstance(documents, str) or not isinstance(documents, (list, tuple)):
        raise InvalidRequestError(f"must be a list of strings, got {type(documents).__name__}", where)
    if len(documents) > limit:
        raise InvalidRequestError(f"has {len(documents)} documents; the limit is {limit} (config.max_candidates)", where)
    for n, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise InvalidRequestError(f"must be a string, got {type(doc).__name__}", f"{where}[{n}]")
    return list(documents)


def check_fusion_method(method: Any) -> str:
    if method not in FUSION_METHODS:
        raise InvalidRequestError(f"unknown method {method!r}; use one of {list(FUSION_METHODS)}", "fusion_method")
    return method


# -- scores ---------------------------------------------------------------------------------


def normalize_scores(scores: Any, method: str) -> list[float]:
    """Raw model scores mapped by ``method``; a model answering NaN is a provider failure."""
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if np.isnan(arr).any():
        raise ProviderCallError("the model returned NaN scores")
    if method == "sigmoid":
        # written as exp(-logaddexp(0, -x)): no overflow warning for large |x|
        arr = np.exp(-np.logaddexp(0.0, -arr))
    elif method == "minmax":
        arr = np.asarray(min_max(arr.tolist()))
    elif method != "none":
        raise InvalidRequestError(f"unknown normalization {method!r}; use one of {list(NORMALIZATIONS)}",
                                  "normalization")
    return [float(x) for x in arr]


def min_max(values: list[float]) -> list[float]:
    """Rescaled to 0..1; all-equal values map to 1.0 (as the vector stores' hybrid fusion does)."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    if not (hi - lo > 1e-12) or not math.isfinite(hi - lo):
        return [1.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def ranks(scores: list[float]) -> list[int]:
    """1-based rank of each score, best first; ties ranked in input order."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # sorted() is stable
    out = [0] * len(scores)
    for rank, i in enumerate(order, start=1):
        out[i] = rank
    return out


def fuse_scores(rerank: list[float], original: list[float], method: str,
                weight: float, rrf_k: int = 60) -> tuple[list[float], list[str]]:
    """Final scores (and one explanation each) from rerank and original scores."""
    check_fusion_method(method)
    if method == "rrf":
        r_rank, o_rank = ranks(rerank), ranks(original)
        final = [1.0 / (rrf_k + a) + 1.0 / (rrf_k + b) for a, b in zip(r_rank, o_rank)]
        why = [f"rrf(k={rrf_k}): rerank rank {a}, original rank {b}" for a, b in zip(r_rank, o_rank)]
        return final, why
    r_norm, o_norm = min_max(rerank), min_max(original)
    final = [weight * a + (1.0 - weight) * b for a, b in zip(r_norm, o_norm)]
    why = [f"weighted: {weight:g} * rerank {a:.4f} + {1.0 - weight:g} * original {b:.4f} (min-max normalized)"
           for a, b in zip(r_norm, o_norm)]
    return final, why


def order_results(candidates: list[RerankCandidate], rerank: list[float], final: list[float],
                  top_k: int | None, explanations: list[str] | None = None) -> list[RerankResult]:
    """Results best first by ``final``, ties in input order, cut to ``top_k``."""
    order = sorted(range(len(candidates)), key=lambda i: -final[i])
    if top_k is not None:
        order = order[:top_k]
    return [
        RerankResult(id=candidates[i].id, content=candidates[i].content,
                     original_score=candidates[i].original_score, rerank_score=float(rerank[i]),
                     final_score=float(final[i]), metadata=dict(candidates[i].metadata),
                     explanation=explanations[i] if explanations else None)
        for i in order
    ]


# -- the shared half of every reranker -----------------------------------------------------------


class RerankerBase(Reranker):
    """Everything but the model: subclasses implement `_score` (raw scores,
    input order), `initialize`, `get_reranker_type`, `supports_batch_reranking`,
    and may add keys to the health report with `_health_details`."""

    settings: RerankerConfig

    def __init__(self) -> None:
        self.settings = RerankerConfig()
        self.last_error: str | None = None
        self._batcher: Coalescer | None = None
        self.model_calls = 0  # merged scoring calls (dynamic batching's effect shows against requests)

    @abstractmethod
    async def _score(self, query: str, documents: list[str]) -> list[float]:
        """Raw scores of non-empty ``documents`` against ``query``, in input order."""

    async def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Raw scores of (query, document) pairs of several queries at once.

        A model that scores pairs in one forward pass (a cross-encoder)
        overrides this; then concurrent calls are merged into one model call
        (dynamic batching, as ``@serve.batch`` does for embeddings, and with
        the same merger as the router's: `providers.registry.coalescing`).
        """
        raise NotImplementedError

    def _batches(self) -> bool:
        return type(self)._score_pairs is not RerankerBase._score_pairs and self.settings.batch_wait_s > 0

    async def _scores(self, query: str, documents: list[str]) -> list[float]:
        if not self._batches():
            self.model_calls += 1
            return await self._score(query, documents)
        if self._batcher is None:
            self._batcher = Coalescer(self._flush_pairs, self.settings.batch_wait_s, self.settings.max_batch_pairs)
        return await self._batcher.submit("pairs", [(query, d) for d in documents], 1)

    async def _flush_pairs(self, key: Any, pairs: list[tuple[str, str]], callers: int) -> list[float]:
        self.model_calls += 1
        return await self._score_pairs(pairs)

    def _health_details(self) -> dict[str, Any]:
        return {}

    async def batch_score_pairs(self, query: str, documents: list[str]) -> list[float]:
        query = check_query(query)
        documents = check_documents(documents, self.get_max_candidates())
        if not documents:
            return []  # no model call for nothing
        raw = await self._scores(query, documents)
        if len(raw) != len(documents):
            raise ProviderCallError(f"the model returned {len(raw)} scores for {len(documents)} documents")
        return normalize_scores(raw, self.settings.normalization)

    async def score_pair(self, query: str, document: str) -> float:
        if not isinstance(document, str):
            raise InvalidRequestError(f"must be a string, got {type(document).__name__}", "document")
        return (await self.batch_score_pairs(query, [document]))[0]

    async def rerank(self, query: str, candidates: list[RerankCandidate],
                     top_k: int | None = None) -> list[RerankResult]:
        query, cands, top_k = self._check(query, candidates, top_k)
        scores = await self.batch_score_pairs(query, [c.content for c in cands])
        return order_results(cands, scores, scores, top_k)

    async def rerank_with_fusion(self, query: str, candidates: list[RerankCandidate], fusion_method: str = "rrf",
                                 top_k: int | None = None) -> list[RerankResult]:
        check_fusion_method(fusion_method)  # before any model work
        query, cands, top_k = self._check(query, candidates, top_k)
        scores = await self.batch_score_pairs(query, [c.content for c in cands])
        final, why = fuse_scores(scores, [c.original_score for c in cands], fusion_method,
                                 self.settings.fusion_weight, self.settings.rrf_k)
        return order_results(cands, scores, final, top_k, why)

    def _check(self, query: Any, candidates: Any, top_k: Any) -> tuple[str, list[RerankCandidate], int | None]:
        return (check_query(query), check_candidates(candidates, self.get_max_candidates()), check_top_k(top_k))

    def get_max_candidates(self) -> int:
        return self.settings.max_candidates

    async def health_check(self) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            scores = await self.batch_score_pairs("health check", ["a health check document", "unrelated"])
            ok = len(scores) == 2 and all(math.isfinite(s) for s in scores)
            self.last_error = None if ok else "non-finite scores"
        except Exception as exc:  # health checks report, never raise
            ok, self.last_error = False, f"{type(exc).__name__}: {exc}"
        try:
            details = self._health_details()
        except Exception as exc:  # pragma: no cover - details must not break the report
            details = {"details_error": f"{type(exc).__name__}: {exc}"}
        return {
            "status": "healthy" if ok else "unhealthy",
            "reranker_type": self.get_reranker_type(),
            "normalization": self.settings.normalization,
            "max_candidates": self.get_max_candidates(),
            **details,
            "response_time": round(time.perf_counter() - start, 4),
            "last_error": self.last_error,
        }
