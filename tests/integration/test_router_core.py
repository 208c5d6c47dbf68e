"""The routing core outside a Serve replica: in this test's own process, attached to
the session's Ray, following the same route table in GCS as the router replicas
and calling the providers' deployment handles directly (one hop, no router)."""

from __future__ import annotations

import numpy as np
import pytest

from deployments.router_core import RouterCore
from deployments.table_store import TableStore
from deployments.tools_api import ArgumentGuard
from providers.errors import InvalidRequestError, ProviderNotFoundError

pytestmark = pytest.mark.integration


async def _core(registry) -> RouterCore:
    settings = registry["config"].registry
    store = TableStore(settings.app_name)
    table = await store.aread()
    assert table is not None, "the router replicas seeded the table in GCS"
    return RouterCore(settings, store, table, guards=[ArgumentGuard()])


async def test_a_core_in_the_driver_serves_what_the_router_serves(registry, reference_model):
    core = await _core(registry)
    vectors = await core.call("embeddings", "minilm", "embed_texts", [["Hello world", "the core, in process"]])
    expected = reference_model.encode(["Hello world", "the core, in process"], normalize_embeddings=True)
    np.testing.assert_allclose(np.stack(vectors), expected, atol=1e-5)
    assert core.caller.usage("embeddings/minilm").calls == 1  # counted here, not by a router
    assert core.handles, "it called the provider's handle itself"


async def test_its_limits_and_guards_refuse_before_any_provider_call(registry):
    core = await _core(registry)
    with pytest.raises(InvalidRequestError) as info:
        await core.call("embeddings", "hash", "embed_texts", [["x"] * 10_000])
    assert info.value.field == "texts"
    with pytest.raises(InvalidRequestError) as info:
        await core.call("tools", "memory.search", "invoke", [{"unknown_argument": 1}])
    assert info.value.field.startswith("arguments.")
    with pytest.raises(ProviderNotFoundError):
        await core.call("embeddings", "no-such-embedder", "embed_texts", [["x"]])
    assert core.caller.usage("embeddings/hash").calls == 0


async def test_concurrent_reads_share_provider_calls_and_keep_their_own_answers(registry):
    """Twelve searches of pgvector at once: fewer provider calls than searches (merged), each
    answer what a lone search answers, and a caller's bad input fails that caller alone."""
    import asyncio

    core = await _core(registry)
    rng = np.random.default_rng(5)
    queries = [v / np.linalg.norm(v) for v in rng.standard_normal((12, 384)).astype(np.float32)]
    alone = [await core.call("vector_stores", "journal", "search_similar", [q], {"top_k": 3}) for q in queries]
    flushes = core.reads.coalescer.flushes
    merged = await asyncio.gather(
        *(core.call("vector_stores", "journal", "search_similar", [q], {"top_k": 3}) for q in queries),
        core.call("vector_stores", "journal", "search_similar", [np.ones(3, dtype=np.float32)], {"top_k": 3}),
        return_exceptions=True)
    assert [[h.id for h in hits] for hits in merged[:12]] == [[h.id for h in hits] for hits in alone]
    assert isinstance(merged[12], InvalidRequestError) and "query_embedding" in str(merged[12]), merged[12]
    calls = core.reads.coalescer.flushes - flushes
    assert calls < 13, f"{calls} provider calls for 13 concurrent searches: nothing merged"
    assert core.caller.usage("vector_stores/journal").failures == 0
