"""CrossEncoderReranker on a tiny random-weight BERT built in a tmp dir (no download).

The weights are random, so these tests check mechanics, not relevance:
shapes, determinism, that scores are the model's own logits, ordering,
batch-size invariance and truncation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from providers.errors import ConfigError, ProviderLoadError
from providers.interfaces.rerankers import RerankCandidate
from providers.rerankers.cross_encoder import CrossEncoderReranker
from tests.rerankers.tiny_model import POSITIONS

QUERY = "what is the capital of france"
DOCS = [
    "paris is the capital of france",
    "berlin is the capital of germany",
    "the cat sits on the mat",
    "revenue grew ten percent",
    "a dog runs on the road at night",
    "the river in the city",
    "music",
    "",
]


async def load(model_dir: str, **config: Any) -> CrossEncoderReranker:
    r = CrossEncoderReranker()
    await r.initialize({"model_name": model_dir, "device": "cpu", **config})
    return r


@pytest_asyncio.fixture(scope="module")
async def reranker(tiny_model_dir: str) -> CrossEncoderReranker:
    return await load(tiny_model_dir)


def reference_logits(model_dir: str, query: str, docs: list[str]) -> np.ndarray:
    """The same pairs through plain transformers, one at a time (no padding)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for d in docs:
            enc = tok(query, d, return_tensors="pt", truncation=True, max_length=POSITIONS)
            out.append(float(model(**enc).logits[0, 0]))
    return np.asarray(out)


async def test_describes_itself(reranker: CrossEncoderReranker, tiny_model_dir: str) -> None:
    assert reranker.get_reranker_type() == "cross_encoder"
    assert reranker.supports_batch_reranking() is True
    assert reranker.get_max_candidates() == 1000
    assert reranker.device == "cpu" and reranker.model_name == tiny_model_dir
    assert reranker.settings.normalization == "sigmoid"


async def test_scores_shape_and_range(reranker: CrossEncoderReranker) -> None:
    scores = await reranker.batch_score_pairs(QUERY, DOCS)
    assert len(scores) == len(DOCS) and all(isinstance(s, float) for s in scores)
    assert all(0.0 < s < 1.0 for s in scores)  # sigmoid by default
    assert len(set(scores)) == len(DOCS)  # the tiny model tells every pair apart


async def test_scores_are_the_models_logits(tiny_model_dir: str) -> None:
    raw = await load(tiny_model_dir, normalization="none")
    logits = await raw.batch_score_pairs(QUERY, DOCS)
    # The empty document is left out of the comparison: sentence-transformers
    # encodes ("q", "") as [CLS] q [SEP] [SEP], the bare tokenizer as [CLS] q [SEP].
    np.testing.assert_allclose(logits[:-1], reference_logits(tiny_model_dir, QUERY, DOCS[:-1]), atol=1e-5)
    sig = await (await load(tiny_model_dir)).batch_score_pairs(QUERY, DOCS)
    np.testing.assert_allclose(sig, [1 / (1 + math.exp(-x)) for x in logits], atol=1e-6)
    mm = await (await load(tiny_model_dir, normalization="minmax")).batch_score_pairs(QUERY, DOCS)
    assert min(mm) == 0.0 and max(mm) == 1.0


async def test_deterministic_across_calls_and_loads(reranker: CrossEncoderReranker, tiny_model_dir: str) -> None:
    first = await reranker.batch_score_pairs(QUERY, DOCS)
    assert await reranker.batch_score_pairs(QUERY, DOCS) == first
    again = await (await load(tiny_model_dir)).batch_score_pairs(QUERY, DOCS)
    np.testing.assert_allclose(again, first, atol=1e-6)


async def test_score_pair_matches_batch(reranker: CrossEncoderReranker) -> None:
    batch = await reranker.batch_score_pairs(QUERY, DOCS)
    for doc, expected in zip(DOCS, batch):
        assert await reranker.score_pair(QUERY, doc) == pytest.approx(expected, abs=1e-6)


async def test_rerank_order_agrees_with_batch_scores(reranker: CrossEncoderReranker) -> None:
    candidates = [RerankCandidate(id=f"d{i}", content=d, original_score=i / 10) for i, d in enumerate(DOCS)]
    scores = await reranker.batch_score_pairs(QUERY, DOCS)
    results = await reranker.rerank(QUERY, candidates)
    expected = sorted(range(len(DOCS)), key=lambda i: (-scores[i], i))
    assert [r.id for r in results] == [f"d{i}" for i in expected]
    for r in results:
        assert r.rerank_score == pytest.approx(scores[int(r.id[1:])], abs=1e-6)
        assert r.final_score == r.rerank_score
    top = await reranker.rerank(QUERY, candidates, top_k=3)
    assert [r.id for r in top] == [r.id for r in results[:3]]
    fused = await reranker.rerank_with_fusion(QUERY, candidates, "weighted", top_k=4)
    assert len(fused) == 4 and all(r.explanation for r in fused)
    assert [r.final_score for r in fused] == sorted((r.final_score for r in fused), reverse=True)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
async def test_batch_size_does_not_change_results(tiny_model_dir: str, batch_size: int,
                                                  reranker: CrossEncoderReranker) -> None:
    reference = await reranker.batch_score_pairs(QUERY, DOCS)
    other = await load(tiny_model_dir, batch_size=batch_size)
    scores = await other.batch_score_pairs(QUERY, DOCS)
    # padding to a batch's longest pair is masked out: equal up to float noise
    np.testing.assert_allclose(scores, reference, atol=1e-5)
    candidates = [RerankCandidate(id=str(i), content=d) for i, d in enumerate(DOCS)]
    assert [r.id for r in await other.rerank(QUERY, candidates)] == \
        [r.id for r in await reranker.rerank(QUERY, candidates)]


async def test_long_text_is_truncated_not_fatal(reranker: CrossEncoderReranker, tiny_model_dir: str) -> None:
    assert reranker.max_length == POSITIONS  # the model's own limit
    long_doc = " ".join(["paris is the capital of france"] * 400)  # ~2,400 tokens, 64 positions
    scores = await reranker.batch_score_pairs(QUERY * 50, [long_doc, "music"])
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)
    # a max_length beyond the position table is capped, not a crash at the first long pair
    capped = await load(tiny_model_dir, max_length=1000)
    assert capped.max_length == POSITIONS
    assert len(await capped.batch_score_pairs(QUERY, [long_doc])) == 1
    short = await load(tiny_model_dir, max_length=16)
    assert short.max_length == 16
    # past 16 tokens the tail is cut: two documents differing only there score alike
    a, b = await short.batch_score_pairs(QUERY, [long_doc + " cat", long_doc + " dog"])
    assert a == pytest.approx(b, abs=1e-6)


async def test_health_check(reranker: CrossEncoderReranker, tiny_model_dir: str) -> None:
    report = await reranker.health_check()
    assert report["status"] == "healthy", report
    assert report["model_loaded"] is True and report["device"] == "cpu"
    assert report["model_name"] == tiny_model_dir and report["reranker_type"] == "cross_encoder"
    unloaded = await CrossEncoderReranker().health_check()
    assert unloaded["status"] == "unhealthy" and unloaded["last_error"]


async def test_config_errors(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="model_name"):
        await CrossEncoderReranker().initialize({})
    with pytest.raises(ConfigError, match="device"):
        await CrossEncoderReranker().initialize({"model_name": "x", "device": "tpu"})
    with pytest.raises(ConfigError, match="batch_size"):
        await CrossEncoderReranker().initialize({"model_name": "x", "batch_size": 0})
    with pytest.raises(ProviderLoadError, match="cannot load cross-encoder"):
        await CrossEncoderReranker().initialize({"model_name": str(tmp_path / "missing"), "local_files_only": True})


async def test_cuda_refused_without_a_gpu(tiny_model_dir: str) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    with pytest.raises(ConfigError, match="cuda"):
        await CrossEncoderReranker().initialize({"model_name": tiny_model_dir, "device": "cuda"})


async def test_two_label_model_refused(tmp_path: Any, tiny_model_dir: str) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2,
                                                               ignore_mismatched_sizes=True)
    model.save_pretrained(str(tmp_path))
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(str(tmp_path))
    with pytest.raises(ProviderLoadError, match="2 labels"):
        await load(str(tmp_path))


async def test_concurrent_calls_share_model_calls_and_keep_their_scores(tiny_model_dir: str) -> None:
    """Dynamic batching: 8 concurrent requests with different queries are merged
    into fewer forward passes, and each still gets exactly its own scores."""
    import asyncio

    merged = await load(tiny_model_dir)
    alone = await load(tiny_model_dir, batch_wait_s=0)
    requests = [(f"query number {i}", [f"document {i}-{j} about topic {j}" for j in range(5)]) for i in range(8)]
    expected = [await alone.batch_score_pairs(q, docs) for q, docs in requests]
    assert alone.model_calls == 8
    got = await asyncio.gather(*(merged.batch_score_pairs(q, docs) for q, docs in requests))
    np.testing.assert_allclose(np.array(got), np.array(expected), rtol=1e-5, atol=1e-6)
    assert merged.model_calls < 8
