"""The seed's Python API, as written, against the running registry."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app import ProviderType, get_provider, provider_registry
from tests.integration.conftest import MINILM, SAMPLE

pytestmark = pytest.mark.integration


def test_provider_type_has_the_seeds_eight_members():
    assert [t.name for t in ProviderType] == [
        "EMBEDDING", "VECTOR_STORE", "GRAPH_ENGINE", "GRAPH_MANAGER",
        "GRAPH_CLIENT", "RERANKER", "CACHE", "TOOL"]


async def test_get_provider_satisfies_the_embedding_interface(registry, reference_model):
    from providers.interfaces.embeddings import EmbeddingProvider

    embedder = await provider_registry.get_provider(ProviderType.EMBEDDING, "minilm")
    assert isinstance(embedder, EmbeddingProvider)
    assert embedder.get_dimension() == 384
    assert embedder.supports_gpu() is False
    assert "MiniLM" in embedder.get_model_name()
    embeddings = await embedder.embed_texts(["Hello world", "This is a test"])
    assert len(embeddings) == 2 and embeddings[0].shape == (384,)
    expected = reference_model.encode(["Hello world", "This is a test"], normalize_embeddings=True)
    np.testing.assert_allclose(np.stack(embeddings), expected, atol=1e-5)
    query = await embedder.embed_query("Hello world")
    np.testing.assert_allclose(query, expected[0], atol=1e-5)
    assert (await embedder.health_check())["status"] == "healthy"


async def test_calls_go_through_the_router(registry):
    before = (await provider_registry.get_stats())["usage_stats"].get("embeddings/minilm", {}).get("calls", 0)
    embedder = await get_provider(ProviderType.EMBEDDING, "minilm")
    await embedder.embed_query("counted")
    after = (await provider_registry.get_stats())["usage_stats"]["embeddings/minilm"]["calls"]
    assert after == before + 1


async def test_list_providers_in_the_seeds_shape(registry):
    everything = await provider_registry.list_providers()
    assert set(everything) == {t.value for t in ProviderType}
    only = await provider_registry.list_providers(provider_type=ProviderType.EMBEDDING, include_instances=True)
    assert list(only) == ["embeddings"]
    info = only["embeddings"]["minilm"]
    assert {"health_status", "usage_count", "initialized"} <= set(info)
    assert info["instance"]["getters"]["get_dimension"] == 384


async def test_stats_and_health_monitoring(registry):
    stats = await provider_registry.get_stats()
    assert sum(stats["provider_counts"].values()) >= 2
    assert set(stats["health_summary"]) == {"healthy", "unhealthy", "unknown"}
    assert "usage_stats" in stats
    health = await provider_registry.health_check(ProviderType.EMBEDDING, "minilm")
    assert health["status"] == "healthy"
    await provider_registry.start_health_monitoring()
    try:
        import asyncio
        import time

        deadline = time.monotonic() + 120  # one probe of every provider; slower on a busy machine
        while True:
            stats = await provider_registry.get_stats()
            if stats["monitoring"] and stats["health_summary"]["unknown"] == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert stats["monitoring"] is True
        assert stats["health_summary"]["unknown"] == 0
    finally:
        await provider_registry.stop_health_monitoring()
    assert (await provider_registry.get_stats())["monitoring"] is False


async def test_register_at_run_time_then_call_and_reload(registry):
    import httpx

    ok = await provider_registry.register_provider(
        provider_type=ProviderType.EMBEDDING, name="runtime-hash",
        class_path=f"{SAMPLE}.HashEmbedder", config={"dimension": 16, "label": "rt"},
        metadata={"owner": "tests"}, deployment={"num_cpus": 0.1})
    assert ok is True
    embedder = await provider_registry.get_provider(ProviderType.EMBEDDING, "runtime-hash")
    assert embedder.get_dimension() == 16 and embedder.get_model_name() == "rt"
    first = await embedder.embed_query("same text")
    r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "runtime-hash", "input": ["same text"]}, timeout=60)
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["data"][0]["embedding"], first, atol=1e-6)

    listed = (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]["runtime-hash"]
    assert listed["version"] == 1 and listed["source"] == "runtime" and listed["metadata"] == {"owner": "tests"}
    assert await provider_registry.reload_provider(ProviderType.EMBEDDING, "runtime-hash") is True
    listed = (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]["runtime-hash"]
    assert listed["version"] == 2 and listed["app_name"].endswith("--v2")
    np.testing.assert_allclose(await embedder.embed_query("same text"), first, atol=1e-6)
    assert await provider_registry.delete_provider(ProviderType.EMBEDDING, "runtime-hash")
    # the event log (GET /v1/events) from Python, newest first
    events = [e for e in (await provider_registry.get_events(limit=1000))["events"]
              if e["provider"] == "embeddings/runtime-hash" and e["kind"] in ("registered", "reloaded", "deleted")]
    assert [(e["kind"], e["version"]) for e in events] == [("deleted", 2), ("reloaded", 2), ("registered", 1)], events
    from providers.errors import ProviderNotFoundError

    with pytest.raises(ProviderNotFoundError):
        await provider_registry.get_provider(ProviderType.EMBEDDING, "runtime-hash")


@pytest.mark.parametrize(
    "class_path, options, error, words",
    [
        ("os:system", {}, "ModuleNotAllowedError", ["'os'", "allowed"]),
        ("subprocess.Popen", {}, "ModuleNotAllowedError", ["subprocess"]),
        (f"{SAMPLE}.IncompleteEmbedder", {}, "InterfaceError", ["embed_query", "get_dimension", "health_check"]),
        (f"{SAMPLE}.NoSuchClass", {}, "ProviderLoadError", ["NoSuchClass"]),
        (MINILM, {"deployment": {"num_gpus": 1}}, "InsufficientResourcesError", ["GPU", "bad-one"]),
        (f"{SAMPLE}.BrokenInitEmbedder", {"deployment": {"num_cpus": 0.1}}, "DeploymentError",
         ["bad-one", "cannot reach the model server"]),
        (f"{SAMPLE}.HashEmbedder", {"deploymnt": {}}, "ConfigError", ["deploymnt", "unknown key"]),
        (f"{SAMPLE}.HashEmbedder", {"fallback": ["ghost"]}, "ProviderNotFoundError", ["ghost"]),
    ],
)
async def test_bad_registrations_fail_clearly(registry, class_path, options, error, words):
    with pytest.raises(Exception) as info:
        await provider_registry.register_provider(ProviderType.EMBEDDING, "bad-one", class_path, {}, **options)
    assert type(info.value).__name__ == error, info.value
    for word in words:
        assert word in str(info.value)
    names = (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]
    assert "bad-one" not in names


async def test_registering_a_taken_name_fails(registry):
    from providers.errors import ProviderExistsError

    with pytest.raises(ProviderExistsError):
        await provider_registry.register_provider(ProviderType.EMBEDDING, "minilm", f"{SAMPLE}.HashEmbedder", {})


async def test_openai_compatible_provider_against_our_own_endpoint(registry, reference_model):
    """The HTTP embedder, registered at run time, pointed at this registry's /v1."""
    secret = "sk-this-must-never-be-shown-1234"
    await provider_registry.register_provider(
        ProviderType.EMBEDDING, "remote-minilm",
        "providers.embeddings.openai_compatible.OpenAICompatibleProvider",
        {"base_url": registry["http"] + "/v1", "model": "minilm", "api_key": secret},
        deployment={"num_cpus": 0.1})
    try:
        remote = await provider_registry.get_provider(ProviderType.EMBEDDING, "remote-minilm")
        assert remote.get_dimension() == 384
        got = await remote.embed_texts(["one", "two"])
        np.testing.assert_allclose(np.stack(got), reference_model.encode(["one", "two"], normalize_embeddings=True), atol=1e-5)
        import httpx

        outputs = [
            repr(await provider_registry.list_providers()),
            repr(await provider_registry.list_providers(include_instances=True)),
            repr(await provider_registry.get_stats()),
            repr(await provider_registry.health_check(ProviderType.EMBEDDING, "remote-minilm")),
            httpx.get(registry["http"] + "/v1/providers", timeout=60).text,
            httpx.get(registry["http"] + "/v1/stats", timeout=60).text,
        ]
        for text in outputs:
            assert secret not in text
        assert "***" in outputs[0]
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "remote-minilm")


async def test_health_probes_are_not_counted_as_usage(registry):
    def calls(stats):
        return stats["usage_stats"]["embeddings/hash"]["calls"]

    before = calls(await provider_registry.get_stats())
    for _ in range(3):
        assert (await provider_registry.health_check(ProviderType.EMBEDDING, "hash"))["status"] == "healthy"
    assert calls(await provider_registry.get_stats()) == before
    embedder = await provider_registry.get_provider(ProviderType.EMBEDDING, "hash")
    await embedder.embed_query("a real call")
    assert calls(await provider_registry.get_stats()) == before + 1
