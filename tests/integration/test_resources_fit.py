"""A registration that cannot be placed fails at once, on the session's real Ray,
and leaves the registry free for the next change (the change lock is released)."""

from __future__ import annotations

import time

import pytest

from serve_app import ProviderType, provider_registry
from tests.integration.conftest import SAMPLE

pytestmark = pytest.mark.integration


async def test_a_registration_that_cannot_fit_fails_fast_naming_asked_and_free(registry):
    import ray

    total = ray.cluster_resources()["CPU"]  # one node here: it has this many, but not all free
    start = time.monotonic()
    with pytest.raises(Exception) as info:
        await provider_registry.register_provider(ProviderType.EMBEDDING, "too-big", f"{SAMPLE}.HashEmbedder",
                                                  {}, deployment={"num_cpus": total})
    took = time.monotonic() - start
    assert type(info.value).__name__ == "InsufficientResourcesError"
    message = str(info.value)
    assert f"embeddings/too-big v1 asks {total:g} CPU per replica (x1); free: " in message
    assert f" CPU of {total:g}; set deployment.num_cpus or add a node" in message
    assert took < 60, f"refused before deploying anything, not after a deploy timeout ({took:.1f}s)"
    # The lock was released: the next change goes through at once.
    await provider_registry.register_provider(ProviderType.EMBEDDING, "fits", f"{SAMPLE}.HashEmbedder", {},
                                              deployment={"num_cpus": 0.1})
    try:
        assert "fits" in (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]
        assert "too-big" not in (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "fits")


async def test_a_reload_counts_the_version_that_runs_beside_it(registry):
    """Half the node's CPUs per replica: the first version fits, a reload would need both at once."""
    import ray

    free = ray.available_resources().get("CPU", 0.0)
    ask = round(free * 0.6, 2)
    await provider_registry.register_provider(ProviderType.EMBEDDING, "half", f"{SAMPLE}.HashEmbedder", {},
                                              deployment={"num_cpus": ask})
    try:
        with pytest.raises(Exception) as info:
            await provider_registry.reload_provider(ProviderType.EMBEDDING, "half")
        assert type(info.value).__name__ == "InsufficientResourcesError"
        assert "(x1, while v1 still runs)" in str(info.value) and "embeddings/half v2" in str(info.value)
        health = await provider_registry.health_check(ProviderType.EMBEDDING, "half")
        assert health["status"] == "healthy" and health["version"] == 1  # v1 kept serving
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "half")
