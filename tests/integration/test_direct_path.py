"""One hop for Python callers (`deployments.direct`): ``ProviderRegistry(direct=True)``
routes provider calls in the test's own process over the table in GCS, and calls
the providers' handles itself, with the router's checks, fallbacks and stats."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from ray import serve

from providers.errors import InvalidRequestError
from providers.registry.table import provider_app_name
from serve_app import ProviderRegistry, ProviderType
from tests.integration.conftest import SAMPLE

pytestmark = pytest.mark.integration


async def test_direct_calls_answer_as_the_router_does_and_count_in_the_cluster_stats(registry):
    direct, routed = ProviderRegistry(direct=True), ProviderRegistry(direct=False)
    texts = ["one hop", "for Python callers"]
    a = await (await direct.get_provider(ProviderType.EMBEDDING, "minilm")).embed_texts(texts)
    b = await (await routed.get_provider(ProviderType.EMBEDDING, "minilm")).embed_texts(texts)
    np.testing.assert_allclose(np.stack(a), np.stack(b), atol=1e-6)
    route = direct._direct[1]
    assert route is not None and route.core.handles, "the provider's handle was called from this process"

    # the router's argument checks run here too
    tool = await direct.get_provider(ProviderType.TOOL, "memory.search")
    with pytest.raises(InvalidRequestError) as info:
        await tool.invoke({"unknown_argument": 1})
    assert info.value.field.startswith("arguments.")

    # This process's calls are in the cluster-wide stats: published at most every second
    # while it calls, and at once when it reads the stats itself.
    def hash_calls(stats):
        return stats["usage_stats"].get("embeddings/hash", {}).get("calls", 0)

    before = hash_calls(await direct.get_stats())
    hash_embedder = await direct.get_provider(ProviderType.EMBEDDING, "hash")
    for i in range(6):
        await hash_embedder.embed_texts([f"counted {i}"])
    assert hash_calls(await direct.get_stats()) == before + 6
    listed = await direct.list_providers(ProviderType.EMBEDDING)
    assert listed["embeddings"]["hash"]["usage_count"] >= before + 6, listed
    deadline = time.monotonic() + 60  # another process (the router path here) sees them once published
    while hash_calls(await routed.get_stats()) < before + 6 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert hash_calls(await routed.get_stats()) >= before + 6


async def test_a_hot_swap_under_direct_python_load_drops_nothing(registry):
    direct, admin = ProviderRegistry(direct=True), ProviderRegistry(direct=False)
    await admin.register_provider(ProviderType.EMBEDDING, "direct-swap", f"{SAMPLE}.HashEmbedder",
                                  {"dimension": 8}, deployment={"num_cpus": 0.1})
    try:
        provider = await direct.get_provider(ProviderType.EMBEDDING, "direct-swap")
        dims: list[int] = []
        errors: list[str] = []
        stop = asyncio.Event()

        async def load() -> None:
            i = 0
            while not stop.is_set():
                try:
                    dims.append(len((await provider.embed_texts([f"text {i}"]))[0]))
                except Exception as exc:  # every failure is counted, none hidden
                    errors.append(repr(exc))
                i += 1

        task = asyncio.create_task(load())
        while len(dims) < 20 and not errors:
            await asyncio.sleep(0.05)
        swapped = await admin.swap_provider(ProviderType.EMBEDDING, "direct-swap", config={"dimension": 16})
        # Load goes on until the old version's Serve app is deleted (the retirement the
        # direct caller must not notice), then for 20 calls more.
        old_app = provider_app_name("registry", ProviderType.EMBEDDING, "direct-swap", swapped["previous_version"])
        deadline = time.monotonic() + 120
        while (16 not in dims or old_app in serve.status().applications) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert old_app not in serve.status().applications, f"{old_app} was not retired within 120 s"
        retired_at = len(dims)
        while len(dims) < retired_at + 20 and not errors and time.monotonic() < deadline + 60:
            await asyncio.sleep(0.05)
        stop.set()
        await task
        assert not errors, errors[:3]
        assert dims[0] == 8 and dims[-1] == 16, (dims[:3], dims[-3:])
        assert 8 not in dims[dims.index(16):], "after the first answer of the new version, only the new one"
    finally:
        await admin.delete_provider(ProviderType.EMBEDDING, "direct-swap")


async def test_reads_go_by_value_and_an_answer_too_large_for_grpc_comes_by_reference(registry, pg_data_dir):
    """One hop sends reads by value over gRPC (`deployments.handles`); this process's gRPC
    client refuses answers over 4 MiB, so 1,000 documents of 5,000 characters (5 MB) must
    come back by reference, whole. A write goes by reference from the start."""
    from ray.serve._private.request_router import replica_wrapper

    from deployments.handles import ReadsByValue
    from providers.interfaces.vector_stores import VectorDocument

    limit = replica_wrapper.RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH
    assert limit < 5_000_000, f"premise: this process's gRPC client takes answers up to {limit} bytes"
    direct, admin = ProviderRegistry(direct=True), ProviderRegistry(direct=False)
    await admin.register_provider(ProviderType.VECTOR_STORE, "big-answers", "providers.vector_stores.pgvector.PgVectorStore",
                                  {"data_dir": pg_data_dir, "table_name": "big_answers", "dimension": 8},
                                  deployment={"num_cpus": 0.1})
    try:
        store = await direct.get_provider(ProviderType.VECTOR_STORE, "big-answers")
        ids = [f"big-{i:04d}" for i in range(1000)]
        for start in range(0, 1000, 100):
            stored = await store.store_documents([
                VectorDocument(id=i, content=i[-1] * 5000, embedding=np.ones(8, dtype=np.float32))
                for i in ids[start:start + 100]])
            assert stored == ids[start:start + 100]
        handles = list(direct._direct[1].core.handles.values())
        assert handles and all(isinstance(h, ReadsByValue) for h in handles)

        hits = await store.search_similar(np.ones(8, dtype=np.float32), top_k=3)
        assert [h.score for h in hits] == pytest.approx([1.0] * 3)
        documents = await store.search_by_ids(ids)
        assert sorted(d.id for d in documents) == ids
        assert all(d.content == d.id[-1] * 5000 for d in documents)
    finally:
        await admin.delete_provider(ProviderType.VECTOR_STORE, "big-answers")
