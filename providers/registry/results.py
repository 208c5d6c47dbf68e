"""What a provider answers is checked before anyone uses it.

A provider that returns the wrong number of vectors, vectors of mixed
lengths, NaN scores or results for candidates it was never given is failing,
even though it did not raise: the router treats such an answer as a failed
call (the breaker counts it, the fallback serves) instead of passing it on to
a vector store or a caller. Only the methods whose contracts are known here
are checked; the checks are linear in the answer's size and cheap next to the
call itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from providers.errors import ProviderCallError
from providers.types import ProviderType


class MalformedResultError(ProviderCallError):
    """The provider answered, but not what its interface promises."""


def check_result(ptype: ProviderType, method: str, args: Sequence[Any], kwargs: dict[str, Any],
                 result: Any) -> None:
    """Raise MalformedResultError when ``result`` breaks ``method``'s contract."""
    check = _CHECKS.get((ptype, method))
    if check is not None:
        problem = check(args, kwargs, result)
        if problem:
            raise MalformedResultError(f"{ptype.value}.{method} returned a malformed result: {problem}")


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _vector_problem(vector: Any, where: str) -> str | None:
    try:
        array = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError):
        return f"{where} is not a vector of numbers"
    if array.ndim != 1 or array.size == 0:
        return f"{where} has shape {array.shape}, not one non-empty row"
    if not np.isfinite(array).all():
        return f"{where} holds NaN or infinite values"
    return None


def _embed_texts(args: Sequence[Any], kwargs: dict[str, Any], result: Any) -> str | None:
    texts = _arg(args, kwargs, 0, "texts") or []
    if not isinstance(result, (list, tuple, np.ndarray)):
        return f"expected a list of vectors, got {type(result).__name__}"
    if len(result) != len(texts):
        return f"{len(result)} vectors for {len(texts)} texts"
    lengths = set()
    for i, vector in enumerate(result):
        problem = _vector_problem(vector, f"vector {i}")
        if problem:
            return problem
        lengths.add(len(vector))
    return f"vectors of different lengths {sorted(lengths)}" if len(lengths) > 1 else None


def _embed_query(args: Sequence[Any], kwargs: dict[str, Any], result: Any) -> str | None:
    return _vector_problem(result, "the vector")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(float(value))


def _rerank(args: Sequence[Any], kwargs: dict[str, Any], result: Any) -> str | None:
    candidates = _arg(args, kwargs, 1, "candidates") or []
    top_k = _arg(args, kwargs, 2, "top_k")
    if not isinstance(result, (list, tuple)):
        return f"expected a list of results, got {type(result).__name__}"
    limit = len(candidates) if top_k is None else min(len(candidates), int(top_k))
    if len(result) > limit:
        return f"{len(result)} results for {len(candidates)} candidates (top_k {top_k})"
    known = {getattr(c, "id", None) for c in candidates}
    for i, item in enumerate(result):
        if getattr(item, "id", None) not in known:
            return f"result {i} is for a candidate that was not sent"
        if not _finite(getattr(item, "final_score", None)):
            return f"result {i} has no finite final_score"
    return None


def _search(args: Sequence[Any], kwargs: dict[str, Any], result: Any) -> str | None:
    if not isinstance(result, (list, tuple)):
        return f"expected a list of hits, got {type(result).__name__}"
    for i, hit in enumerate(result):
        if not isinstance(getattr(hit, "id", None), str) or not _finite(getattr(hit, "score", None)):
            return f"hit {i} lacks a string id or a finite score"
    return None


def _score_pair(args: Sequence[Any], kwargs: dict[str, Any], result: Any) -> str | None:
    return None if _finite(result) else "the score is not a finite number"


_CHECKS = {
    (ProviderType.EMBEDDING, "embed_texts"): _embed_texts,
    (ProviderType.EMBEDDING, "embed_query"): _embed_query,
    (ProviderType.RERANKER, "rerank"): _rerank,
    (ProviderType.RERANKER, "score_pair"): _score_pair,
    (ProviderType.VECTOR_STORE, "search_similar"): _search,
    (ProviderType.VECTOR_STORE, "hybrid_search"): _search,
}
