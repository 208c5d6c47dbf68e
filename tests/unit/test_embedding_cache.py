"""The router's embedding cache logic on the real in-process LRU (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from providers.caches.memory import MemoryCache
from providers.registry.embedding_cache import EmbeddingCache, cached_embed


@pytest.fixture
async def cache():
    backend = MemoryCache()
    await backend.initialize({"max_entries": 1000})
    yield EmbeddingCache(backend, ttl_s=60)
    await backend.close()


def make_compute(calls: list, cacheable: bool = True):
    async def compute(texts):
        calls.append(list(texts))
        return [np.full(4, len(t), dtype=np.float32) for t in texts], cacheable
    return compute


async def test_repeated_texts_cost_one_model_call(cache):
    calls: list = []
    first = await cached_embed(cache, "minilm", 1, "d", ["a", "bb", "a"], make_compute(calls))
    assert calls == [["a", "bb"]]  # the duplicate in one request is computed once
    second = await cached_embed(cache, "minilm", 1, "d", ["bb", "ccc"], make_compute(calls))
    assert calls[-1] == ["ccc"]
    np.testing.assert_array_equal(second[0], first[1])
    assert cache.stats()["hits"] == 1 and cache.stats()["misses"] == 3 + 1


async def test_version_and_role_separate_entries(cache):
    calls: list = []
    await cached_embed(cache, "minilm", 1, "d", ["x"], make_compute(calls))
    await cached_embed(cache, "minilm", 2, "d", ["x"], make_compute(calls))  # after a hot swap
    await cached_embed(cache, "minilm", 2, "q", ["x"], make_compute(calls))  # a query, not a document
    await cached_embed(cache, "other", 2, "q", ["x"], make_compute(calls))
    assert len(calls) == 4


async def test_fallback_results_are_not_cached(cache):
    calls: list = []
    await cached_embed(cache, "minilm", 1, "d", ["y"], make_compute(calls, cacheable=False))
    await cached_embed(cache, "minilm", 1, "d", ["y"], make_compute(calls))
    assert len(calls) == 2


async def test_a_failing_backend_is_a_miss_not_an_error():
    """``Closed`` stands in for any backend that raises; the real outage (Valkey
    stopped mid-test) is in tests/caches."""

    class Closed:
        async def get_many(self, keys):
            raise ConnectionError("cache down")

        async def set_many(self, items, ttl=None):
            raise ConnectionError("cache down")

    cache = EmbeddingCache(Closed())
    calls: list = []
    out = await cached_embed(cache, "minilm", 1, "d", ["z"], make_compute(calls))
    assert calls == [["z"]] and out[0].shape == (4,)
    assert cache.stats()["errors"] == 2 and cache.stats()["misses"] == 1
