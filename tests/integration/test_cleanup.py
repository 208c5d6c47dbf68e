"""A second registry in the same cluster, then cleanup() removes all of it."""

from __future__ import annotations

import pytest

from serve_app import ProviderRegistry, ProviderType
from tests.integration.conftest import SAMPLE

pytestmark = pytest.mark.integration


async def test_cleanup_deletes_every_application_of_a_registry(registry, tmp_path_factory):
    import asyncio

    import httpx
    from ray import serve

    from providers.registry.config import parse_config
    from serve_app.main import start_registry

    port = registry["config"].registry.http_port
    config = parse_config({
        "registry": {"app_name": "scratch", "route_prefix": "/scratch", "http_port": port,
                     "allowed_module_prefixes": [SAMPLE], "router": {"num_replicas": 2},
                     # one embedding cache for both router replicas: the embedded Valkey
                     "embedding_cache": {"cache": "valkey"}},
        "embeddings": {"providers": {"h": {"class": f"{SAMPLE}.HashEmbedder", "deployment": {"num_cpus": 0.1}}}},
        "cache": {"providers": {"valkey": {"class": "providers.caches.redis_cache.RedisCache",
                                           "config": {"data_dir": str(tmp_path_factory.mktemp("vk") / "valkey")},
                                           "deployment": {"num_cpus": 0.1}}}},
    })
    await asyncio.to_thread(start_registry, config)
    scratch = ProviderRegistry(app_name="scratch")
    embedder = await scratch.get_provider(ProviderType.EMBEDDING, "h")
    assert (await embedder.embed_query("x")).shape == (384,)
    assert any(a.startswith("scratch") for a in serve.status().applications)
    # Two router replicas: the stats are the cluster's, whichever replica answers.
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(*(
            client.post(f"http://127.0.0.1:{port}/scratch/v1/embeddings", json={"model": "h", "input": [f"t{i}"]})
            for i in range(40)))
    assert all(r.status_code == 200 for r in responses)
    await asyncio.sleep(1.5)  # one publishing period
    answered_by = set()
    for _ in range(12):
        stats = await scratch.get_stats()
        answered_by.add(stats["scope"]["answered_by"])
        assert len(stats["scope"]["router_replicas"]) == 2
        assert stats["usage_stats"]["embeddings/h"]["calls"] == 41  # 40 + the embed_query above
        assert stats["usage_stats"]["embeddings/h"]["replicas"] == 1
    assert len(answered_by) == 2, "every call landed on one router replica"
    # The same 40 texts again, whichever router replica takes them: all from the shared cache.
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(*(
            client.post(f"http://127.0.0.1:{port}/scratch/v1/embeddings", json={"model": "h", "input": [f"t{i}"]})
            for i in range(40)))
    assert all(r.status_code == 200 for r in responses)
    await asyncio.sleep(1.5)
    stats = await scratch.get_stats()
    assert stats["usage_stats"]["embeddings/h"]["calls"] == 41  # no new model call
    assert stats["embedding_cache"]["hits"] >= 40 and stats["usage_stats"]["cache/valkey"]["calls"] >= 80

    # Kill one of the two router replicas under load: Python API callers see no failure.
    import ray

    await scratch.register_provider(ProviderType.EMBEDDING, "rt", f"{SAMPLE}.HashEmbedder", {},
                                    deployment={"num_cpus": 0.1})

    failures: list[str] = []
    done = asyncio.Event()

    async def caller(i: int) -> int:
        n = 0
        while not done.is_set():
            try:
                await embedder.embed_query(f"load {i} {n}")
            except Exception as exc:
                failures.append(repr(exc)[:300])
            n += 1
        return n

    workers = [asyncio.create_task(caller(i)) for i in range(8)]
    await asyncio.sleep(1.0)
    routers = [a for a in ray.util.list_named_actors(all_namespaces=True)
               if "scratch#RegistryRouter" in a["name"]]
    assert len(routers) == 2
    ray.kill(ray.get_actor(routers[0]["name"], namespace=routers[0]["namespace"]), no_restart=True)
    await asyncio.sleep(4.0)
    done.set()
    served = sum(await asyncio.gather(*workers))
    assert failures == [] and served > 50, (failures[:3], served)
    print(f"router replica killed under load: {served} calls served, {scratch.retries} retried, 0 failed")

    # The replacement replica routes by the same table, run-time registration included:
    # the table lives in GCS, not in a replica.
    new_replica = None
    for _ in range(120):
        stats = await scratch.get_stats()
        if stats["scope"]["answered_by"] not in answered_by:
            new_replica = stats
            break
        await asyncio.sleep(0.25)
    assert new_replica is not None, "no replacement router replica answered"
    assert "embeddings/rt" in new_replica["usage_stats"]
    # Its admin token variable (the default name) is unset: admin is disabled, and says how to enable it.

    r = httpx.post(f"http://127.0.0.1:{port}/scratch/v1/admin/providers/embeddings/h/reload",
                   headers={"Authorization": "Bearer anything"})
    assert r.status_code == 403 and "PROVIDER_REGISTRY_ADMIN_TOKEN" in r.json()["error"]["message"]

    await scratch.cleanup()
    apps = serve.status().applications
    assert not [a for a in apps if a.startswith("scratch")], list(apps)
    # the main registry is untouched
    assert "registry" in apps and "registry--embeddings--minilm--v1" in apps
