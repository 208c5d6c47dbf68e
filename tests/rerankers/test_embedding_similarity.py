"""EmbeddingSimilarityReranker over the real packaged all-MiniLM-L6-v2, through a LocalRegistry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from providers.errors import ConfigError, ProviderCallError, ProviderNotFoundError
from providers.interfaces.rerankers import RerankCandidate
from providers.registry.dependencies import LocalRegistry
from providers.rerankers.embedding_similarity import EmbeddingSimilarityReranker, cosine
from providers.types import ProviderType

# (query, relevant document, distractors): the relevant one shares meaning,
# not necessarily words, with the query.
EXAMPLES = [
    ("What is the capital of France?",
     "Paris is the capital and largest city of France.",
     ["Berlin is the capital of Germany.", "The cat sat on the mat all afternoon.",
      "Quarterly revenue grew by twelve percent."]),
    ("How do I bake sourdough bread at home?",
     "Mix flour, water and starter, let the dough rise overnight, then bake it in a hot oven.",
     ["The stock market closed higher on Friday.", "Our team won the football match 3-1.",
      "Bread prices rose sharply in the nineteenth century."]),
    ("symptoms of the flu",
     "Influenza usually causes fever, a sore throat, muscle aches and tiredness.",
     ["The Python programming language was created by Guido van Rossum.",
      "Flew to Lisbon for a week of sightseeing.", "How to change a flat tyre on a bicycle."]),
]


async def make(registry: Any, **config: Any) -> EmbeddingSimilarityReranker:
    r = EmbeddingSimilarityReranker()
    r.registry = registry
    await r.initialize({"embedder": "minilm", **config})
    return r


@pytest_asyncio.fixture(scope="module")
async def registry(minilm: Any) -> LocalRegistry:
    return LocalRegistry({(ProviderType.EMBEDDING, "minilm"): minilm})


@pytest_asyncio.fixture(scope="module")
async def reranker(registry: LocalRegistry) -> EmbeddingSimilarityReranker:
    return await make(registry)


async def test_describes_itself(reranker: EmbeddingSimilarityReranker) -> None:
    assert reranker.get_reranker_type() == "embedding_similarity"
    assert reranker.supports_batch_reranking() is True
    assert reranker.get_max_candidates() == 1000
    assert reranker.settings.normalization == "none"


@pytest.mark.parametrize(("query", "relevant", "others"), EXAMPLES, ids=["capital", "bread", "flu"])
async def test_relevant_document_ranks_first(reranker: EmbeddingSimilarityReranker, query: str,
                                             relevant: str, others: list[str]) -> None:
    # the relevant document is put last, so input order cannot explain a win
    docs = [*others, relevant]
    candidates = [RerankCandidate(id=f"d{i}", content=d) for i, d in enumerate(docs)]
    results = await reranker.rerank(query, candidates)
    assert results[0].content == relevant, [(r.content, round(r.rerank_score, 3)) for r in results]
    assert results[0].rerank_score > results[1].rerank_score + 0.05


async def test_scores_are_cosines_of_the_embedder(reranker: EmbeddingSimilarityReranker, minilm: Any) -> None:
    query, relevant, others = EXAMPLES[0]
    docs = [relevant, *others]
    scores = await reranker.batch_score_pairs(query, docs)
    q = minilm.encode([query])[0]
    d = minilm.encode(docs)
    np.testing.assert_allclose(scores, d @ q, atol=1e-5)  # MiniLM's vectors are unit length
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert await reranker.score_pair(query, relevant) == pytest.approx(scores[0], abs=1e-6)


async def test_fusion_with_original_scores(reranker: EmbeddingSimilarityReranker) -> None:
    query, relevant, others = EXAMPLES[0]
    # the first stage liked a distractor best; the rerank score pulls the relevant one up
    candidates = [RerankCandidate(id="rel", content=relevant, original_score=0.2)] + [
        RerankCandidate(id=f"o{i}", content=d, original_score=0.9 - i * 0.1) for i, d in enumerate(others)]
    weighted = await reranker.rerank_with_fusion(query, candidates, "weighted")
    assert weighted[0].id == "rel"
    rrf = await reranker.rerank_with_fusion(query, candidates, "rrf", top_k=2)
    assert len(rrf) == 2 and rrf[0].final_score >= rrf[1].final_score


async def test_minmax_normalization(registry: LocalRegistry) -> None:
    r = await make(registry, normalization="minmax")
    query, relevant, others = EXAMPLES[1]
    scores = await r.batch_score_pairs(query, [relevant, *others])
    assert scores[0] == 1.0 and min(scores) == 0.0


async def test_health_check(reranker: EmbeddingSimilarityReranker) -> None:
    report = await reranker.health_check()
    assert report["status"] == "healthy", report
    assert report["embedder"] == "minilm" and report["embedder_resolved"] is True


async def test_missing_registry_is_a_clear_config_error() -> None:
    r = EmbeddingSimilarityReranker()
    with pytest.raises(ConfigError, match=r"registry.*set provider.registry before initialize"):
        await r.initialize({"embedder": "minilm"})


async def test_unknown_embedder(registry: LocalRegistry) -> None:
    # Looked up on first use (the embedder may start after the reranker), so the first call says so.
    reranker = await make(registry, embedder="nope")
    with pytest.raises(ProviderNotFoundError, match="nope"):
        await reranker.batch_score_pairs("q", ["d"])


@pytest.mark.parametrize("config", [{}, {"embedder": "bad name!"}, {"embedder": "x", "model": "y"}])
async def test_bad_config(registry: LocalRegistry, config: dict[str, Any]) -> None:
    r = EmbeddingSimilarityReranker()
    r.registry = registry
    with pytest.raises(ConfigError, match="config"):
        await r.initialize(config)


class ScaledEmbedder:
    """Returns list vectors (as the router does) of assorted lengths, plus a zero vector."""

    async def embed_query(self, query: str) -> list[float]:
        return [2.0, 0.0]

    async def embed_texts(self, texts: list[str], batch_size: int = 32) -> list[list[float]]:
        table = {"same": [5.0, 0.0], "diag": [3.0, 3.0], "zero": [0.0, 0.0], "opposite": [-0.1, 0.0]}
        return [table[t] for t in texts]


class BrokenEmbedder(ScaledEmbedder):
    async def embed_texts(self, texts: list[str], batch_size: int = 32) -> list[list[float]]:
        return [[1.0, 0.0, 0.0] for _ in texts]  # wrong dimension


async def test_cosine_does_not_assume_unit_vectors() -> None:
    r = await make(LocalRegistry({(ProviderType.EMBEDDING, "minilm"): ScaledEmbedder()}))
    scores = await r.batch_score_pairs("q", ["same", "diag", "zero", "opposite"])
    np.testing.assert_allclose(scores, [1.0, np.sqrt(0.5), 0.0, -1.0], atol=1e-6)
    assert cosine(np.zeros(2, dtype=np.float32), np.ones((1, 2), dtype=np.float32)).tolist() == [0.0]


async def test_embedder_with_wrong_shapes_is_a_call_error() -> None:
    r = await make(LocalRegistry({(ProviderType.EMBEDDING, "minilm"): BrokenEmbedder()}))
    with pytest.raises(ProviderCallError, match="shape"):
        await r.batch_score_pairs("q", ["a", "b"])
    # its own health is fine: the embedder's fault shows in calls and in the embedder's health
    assert (await r.health_check())["status"] == "healthy"
    assert (await EmbeddingSimilarityReranker().health_check())["status"] == "unhealthy"  # never initialized
