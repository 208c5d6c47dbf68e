"""providers/registry/results.py: malformed provider answers are failures, good ones pass."""

from __future__ import annotations

import numpy as np
import pytest

from providers.errors import ProviderCallError
from providers.interfaces.rerankers import RerankCandidate, RerankResult
from providers.interfaces.vector_stores import VectorSearchResult
from providers.registry.results import MalformedResultError, check_result
from providers.types import ProviderType

E, R, V = ProviderType.EMBEDDING, ProviderType.RERANKER, ProviderType.VECTOR_STORE
GOOD = [np.ones(4, dtype=np.float32), np.zeros(4, dtype=np.float32)]


def cands(n: int) -> list[RerankCandidate]:
    return [RerankCandidate(id=f"c{i}", content=f"doc {i}") for i in range(n)]


def res(cid: str, score: float = 0.5) -> RerankResult:
    return RerankResult(id=cid, content="", original_score=0.0, rerank_score=score, final_score=score)


@pytest.mark.parametrize(("ptype", "method", "args", "result"), [
    (E, "embed_texts", [["a", "b"]], GOOD),
    (E, "embed_texts", [["a", "b"]], [[1.0, 2.0], [3.0, 4.0]]),  # lists are vectors too
    (E, "embed_texts", [[]], []),
    (E, "embed_query", ["a"], np.ones(3)),
    (R, "rerank", ["q", cands(3)], [res("c2"), res("c0")]),
    (R, "rerank", ["q", cands(3), 1], [res("c1")]),
    (R, "score_pair", ["q", "d"], 0.25),
    (V, "search_similar", [np.ones(3)], [VectorSearchResult(id="a", score=0.9)]),
    (E, "get_dimension", [], "not checked"),  # methods without a known contract pass through
])
def test_good_answers_pass(ptype, method, args, result):
    check_result(ptype, method, args, {}, result)


@pytest.mark.parametrize(("ptype", "method", "args", "result", "says"), [
    (E, "embed_texts", [["a", "b"]], GOOD[:1], "1 vectors for 2 texts"),
    (E, "embed_texts", [["a", "b"]], [np.ones(4), np.ones(3)], "different lengths"),
    (E, "embed_texts", [["a"]], [np.array([1.0, np.nan])], "NaN"),
    (E, "embed_texts", [["a"]], [np.array([1.0, np.inf])], "NaN or infinite"),
    (E, "embed_texts", [["a"]], [np.ones((2, 2))], "shape"),
    (E, "embed_texts", [["a"]], [["x", "y"]], "not a vector of numbers"),
    (E, "embed_texts", [["a"]], None, "expected a list"),
    (E, "embed_query", ["a"], np.array([]), "shape"),
    (R, "rerank", ["q", cands(2)], [res("c0"), res("c1"), res("c0")], "3 results for 2 candidates"),
    (R, "rerank", ["q", cands(3), 1], [res("c0"), res("c1")], "top_k 1"),
    (R, "rerank", ["q", cands(2)], [res("ghost")], "not sent"),
    (R, "rerank", ["q", cands(2)], [res("c0", float("nan"))], "finite final_score"),
    (R, "score_pair", ["q", "d"], "high", "not a finite number"),
    (V, "hybrid_search", ["q", np.ones(3)], [VectorSearchResult(id="a", score=float("nan"))], "finite score"),
    (V, "search_similar", [np.ones(3)], {"a": 1}, "expected a list"),
])
def test_malformed_answers_are_provider_failures(ptype, method, args, result, says):
    with pytest.raises(MalformedResultError) as err:
        check_result(ptype, method, args, {}, result)
    assert says in str(err.value) and f"{ptype.value}.{method}" in str(err.value)
    assert isinstance(err.value, ProviderCallError)  # so the router falls back, as for any failure


def test_arguments_by_keyword_are_understood():
    check_result(E, "embed_texts", [], {"texts": ["a", "b"]}, GOOD)
    with pytest.raises(MalformedResultError):
        check_result(E, "embed_texts", [], {"texts": ["a"]}, GOOD)
