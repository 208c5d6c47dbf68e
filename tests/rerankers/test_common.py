"""The logic every reranker shares (providers/rerankers/common.py), on a model-free reranker."""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest

from providers.config_base import parse_provider_config
from providers.errors import ConfigError, InvalidRequestError, ProviderCallError
from providers.interfaces.rerankers import RerankCandidate, RerankResult
from providers.registry.loading import validate_provider_class
from providers.rerankers.common import (
    RerankerBase,
    RerankerConfig,
    fuse_scores,
    min_max,
    normalize_scores,
    ranks,
)
from providers.types import ProviderType


class OverlapReranker(RerankerBase):
    """Scores a document by how many query words it contains; counts model calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.fail = False

    async def initialize(self, config: dict[str, Any]) -> None:
        self.settings = parse_provider_config(RerankerConfig, config)

    async def _score(self, query: str, documents: list[str]) -> list[float]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("model exploded")
        words = set(query.lower().split())
        return [float(len(words & set(d.lower().split()))) for d in documents]

    def get_reranker_type(self) -> str:
        return "overlap"

    def supports_batch_reranking(self) -> bool:
        return True


async def make(**config: Any) -> OverlapReranker:
    r = OverlapReranker()
    await r.initialize(config)
    return r


def cands(*contents: str, scores: list[float] | None = None) -> list[RerankCandidate]:
    scores = scores or [0.0] * len(contents)
    return [RerankCandidate(id=f"d{i}", content=c, original_score=s) for i, (c, s) in enumerate(zip(contents, scores))]


QUERY = "red apple pie"
DOCS = ["a blue car", "red apple pie recipe", "red car", "apple pie", "red apple"]


# -- rerank ------------------------------------------------------------------------------


async def test_rerank_orders_by_score_best_first() -> None:
    r = await make()
    results = await r.rerank(QUERY, cands(*DOCS))
    assert all(isinstance(x, RerankResult) for x in results)
    assert [x.id for x in results] == ["d1", "d3", "d4", "d2", "d0"]  # 3, 2, 2, 1, 0: ties in input order
    assert [x.rerank_score for x in results] == [3.0, 2.0, 2.0, 1.0, 0.0]
    assert all(x.final_score == x.rerank_score for x in results)
    assert all(x.explanation is None for x in results)


async def test_rerank_top_k_and_none() -> None:
    r = await make()
    assert [x.id for x in await r.rerank(QUERY, cands(*DOCS), top_k=2)] == ["d1", "d3"]
    assert len(await r.rerank(QUERY, cands(*DOCS), top_k=None)) == 5
    assert len(await r.rerank(QUERY, cands(*DOCS), top_k=50)) == 5


async def test_ties_keep_input_order() -> None:
    r = await make()
    results = await r.rerank("zzz", cands("x", "y", "z", "w"))
    assert [x.id for x in results] == ["d0", "d1", "d2", "d3"]


async def test_rerank_keeps_fields_and_accepts_dicts() -> None:
    r = await make()
    raw = [{"id": "a", "content": "red apple", "original_score": 0.5, "metadata": {"src": "kw"}},
           {"id": "b", "content": "blue"}]
    results = await r.rerank(QUERY, raw)
    assert results[0].id == "a" and results[0].original_score == 0.5 and results[0].metadata == {"src": "kw"}
    assert results[1].original_score == 0.0 and results[1].metadata == {}


async def test_empty_candidates_make_no_model_call() -> None:
    r = await make()
    assert await r.rerank(QUERY, []) == []
    assert await r.rerank_with_fusion(QUERY, [], "weighted") == []
    assert await r.batch_score_pairs(QUERY, []) == []
    assert r.calls == 0


async def test_score_pair_matches_batch() -> None:
    r = await make()
    batch = await r.batch_score_pairs(QUERY, DOCS)
    assert [await r.score_pair(QUERY, d) for d in DOCS] == batch


# -- input checks --------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   ", None, 5, ["q"]])
async def test_bad_query_names_the_field(query: Any) -> None:
    r = await make()
    with pytest.raises(InvalidRequestError) as err:
        await r.rerank(query, cands("x"))
    assert err.value.field == "query"
    assert r.calls == 0


@pytest.mark.parametrize(
    ("candidates", "field"),
    [
        ("not a list", "candidates"),
        ({"id": "a", "content": "x"}, "candidates"),
        ([{"id": "a", "content": "x"}, 7], "candidates[1]"),
        ([{"id": "a"}], "candidates[0]"),
        ([{"id": "a", "content": "x", "score": 1}], "candidates[0]"),
        ([{"id": "", "content": "x"}], "candidates[0].id"),
        ([{"id": 3, "content": "x"}], "candidates[0].id"),
        ([{"id": "a", "content": "ok"}] * 3 + [{"id": "d", "content": 42}], "candidates[3].content"),
        ([{"id": "a", "content": "x", "original_score": float("nan")}], "candidates[0].original_score"),
        ([{"id": "a", "content": "x", "original_score": True}], "candidates[0].original_score"),
        ([{"id": "a", "content": "x", "original_score": "1"}], "candidates[0].original_score"),
        ([{"id": "a", "content": "x", "metadata": [1]}], "candidates[0].metadata"),
    ],
)
async def test_bad_candidates_name_the_field(candidates: Any, field: str) -> None:
    r = await make()
    with pytest.raises(InvalidRequestError) as err:
        await r.rerank(QUERY, candidates)
    assert err.value.field == field
    assert r.calls == 0


async def test_max_candidates_from_config() -> None:
    r = await make(max_candidates=3)
    assert r.get_max_candidates() == 3
    await r.rerank(QUERY, cands("a", "b", "c"))
    with pytest.raises(InvalidRequestError, match="limit is 3") as err:
        await r.rerank(QUERY, cands("a", "b", "c", "d"))
    assert err.value.field == "candidates"
    with pytest.raises(InvalidRequestError):
        await r.batch_score_pairs(QUERY, ["a", "b", "c", "d"])
    assert (await make()).get_max_candidates() == 1000


@pytest.mark.parametrize("top_k", [0, -1, True, 1.5, "3"])
async def test_bad_top_k(top_k: Any) -> None:
    r = await make()
    with pytest.raises(InvalidRequestError) as err:
        await r.rerank(QUERY, cands("x"), top_k=top_k)
    assert err.value.field == "top_k"


async def test_bad_documents_for_batch_score_pairs() -> None:
    r = await make()
    with pytest.raises(InvalidRequestError) as err:
        await r.batch_score_pairs(QUERY, "one string")
    assert err.value.field == "documents"
    with pytest.raises(InvalidRequestError) as err:
        await r.batch_score_pairs(QUERY, ["ok", None])
    assert err.value.field == "documents[1]"
    with pytest.raises(InvalidRequestError) as err:
        await r.score_pair(QUERY, 3)  # type: ignore[arg-type]
    assert err.value.field == "document"


# -- fusion -----------------------------------------------------------------------------------


async def test_rrf_fuses_the_two_ranks() -> None:
    r = await make()
    # rerank scores 0, 3, 1, 2, 2 ; original scores favour d0 then d4
    original = [0.9, 0.1, 0.2, 0.3, 0.8]
    results = await r.rerank_with_fusion(QUERY, cands(*DOCS, scores=original), "rrf")
    rerank_rank = {"d1": 1, "d3": 2, "d4": 3, "d2": 4, "d0": 5}
    original_rank = {"d0": 1, "d4": 2, "d3": 3, "d2": 4, "d1": 5}
    expected = {i: 1 / (60 + rerank_rank[i]) + 1 / (60 + original_rank[i]) for i in rerank_rank}
    for x in results:
        assert x.final_score == pytest.approx(expected[x.id])
        assert "rrf" in (x.explanation or "")
    # equal fused scores (d3/d4: ranks 2+3 and 3+2; d0/d1: 5+1 and 1+5) keep input order
    assert [x.id for x in results] == sorted(expected, key=lambda i: (-expected[i], i))
    assert [x.id for x in results] == ["d3", "d4", "d0", "d1", "d2"]


async def test_rrf_is_the_default_method() -> None:
    r = await make()
    a = await r.rerank_with_fusion(QUERY, cands(*DOCS, scores=[1, 2, 3, 4, 5]))
    b = await r.rerank_with_fusion(QUERY, cands(*DOCS, scores=[1, 2, 3, 4, 5]), "rrf")
    assert a == b


async def test_weighted_fusion_min_max_normalizes_both() -> None:
    r = await make()
    original = [10.0, 0.0, 5.0, 0.0, 2.5]
    results = await r.rerank_with_fusion(QUERY, cands(*DOCS, scores=original), "weighted", top_k=3)
    rerank = [0.0, 3.0, 1.0, 2.0, 2.0]
    expected = [0.7 * (s / 3) + 0.3 * (o / 10) for s, o in zip(rerank, original)]
    order = sorted(range(5), key=lambda i: -expected[i])[:3]
    assert [x.id for x in results] == [f"d{i}" for i in order]
    for x, i in zip(results, order):
        assert x.final_score == pytest.approx(expected[i])
        assert x.rerank_score == rerank[i]


async def test_fusion_weight_from_config() -> None:
    only_original = await make(fusion_weight=0.0)
    results = await only_original.rerank_with_fusion(QUERY, cands(*DOCS, scores=[5, 1, 4, 2, 3]), "weighted")
    assert [x.id for x in results] == ["d0", "d2", "d4", "d3", "d1"]
    only_rerank = await make(fusion_weight=1.0)
    results = await only_rerank.rerank_with_fusion(QUERY, cands(*DOCS, scores=[5, 1, 4, 2, 3]), "weighted")
    assert [x.id for x in results] == ["d1", "d3", "d4", "d2", "d0"]


async def test_unknown_fusion_method_names_the_field_before_scoring() -> None:
    r = await make()
    with pytest.raises(InvalidRequestError) as err:
        await r.rerank_with_fusion(QUERY, cands("x"), "borda")
    assert err.value.field == "fusion_method"
    assert r.calls == 0


def test_fuse_scores_and_ranks_helpers() -> None:
    assert ranks([0.5, 0.9, 0.5, 0.1]) == [2, 1, 3, 4]
    final, why = fuse_scores([1.0, 1.0], [1.0, 1.0], "weighted", 0.7)
    assert final == [1.0, 1.0] and len(why) == 2  # all-equal lists normalize to 1.0
    with pytest.raises(InvalidRequestError):
        fuse_scores([1.0], [1.0], "max", 0.5)


# -- normalization -----------------------------------------------------------------------------


def test_normalizations() -> None:
    assert normalize_scores([2.0, -1.0], "none") == [2.0, -1.0]
    sig = normalize_scores([0.0, 2.0, -2.0], "sigmoid")
    assert sig[0] == pytest.approx(0.5) and sig[1] == pytest.approx(1 / (1 + math.exp(-2)))
    assert sig[1] + sig[2] == pytest.approx(1.0)
    assert normalize_scores([2.0, 4.0, 3.0], "minmax") == [0.0, 1.0, 0.5]
    assert normalize_scores([7.0, 7.0], "minmax") == [1.0, 1.0]
    assert min_max([]) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning at extreme logits
        extreme = normalize_scores([1000.0, -1000.0], "sigmoid")
    assert extreme == [1.0, 0.0]
    with pytest.raises(ProviderCallError):
        normalize_scores([float("nan")], "none")
    with pytest.raises(InvalidRequestError):
        normalize_scores([1.0], "softmax")


async def test_normalization_from_config() -> None:
    r = await make(normalization="minmax")
    assert await r.batch_score_pairs(QUERY, DOCS) == [0.0, 1.0, 1 / 3, 2 / 3, 2 / 3]
    r = await make(normalization="sigmoid")
    assert (await r.batch_score_pairs(QUERY, ["zzz"]))[0] == pytest.approx(0.5)


@pytest.mark.parametrize("config", [{"normalization": "softmax"}, {"max_candidates": 0},
                                    {"fusion_weight": 1.5}, {"colour": "red"}])
async def test_bad_config(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="config"):
        await make(**config)


# -- health -----------------------------------------------------------------------------------


async def test_health_check_reports_and_never_raises() -> None:
    r = await make()
    report = await r.health_check()
    assert report["status"] == "healthy" and report["reranker_type"] == "overlap" and report["last_error"] is None
    r.fail = True
    report = await r.health_check()
    assert report["status"] == "unhealthy" and "model exploded" in report["last_error"]


# -- the real classes satisfy the interface ---------------------------------------------------


def test_reranker_classes_implement_the_interface() -> None:
    from providers.embeddings.vllm import VLLMEmbeddingProvider
    from providers.rerankers.cross_encoder import CrossEncoderReranker
    from providers.rerankers.embedding_similarity import EmbeddingSimilarityReranker
    from providers.rerankers.vllm import VLLMReranker

    for cls in (CrossEncoderReranker, EmbeddingSimilarityReranker, VLLMReranker, OverlapReranker):
        validate_provider_class(cls, ProviderType.RERANKER)
        cls()  # not abstract
    validate_provider_class(VLLMEmbeddingProvider, ProviderType.EMBEDDING)
    VLLMEmbeddingProvider()
