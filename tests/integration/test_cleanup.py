"""A second registry in the same cluster, then cleanup() removes all of it.

Every wait polls for its condition with a generous deadline (router stats are
published once a second; a replacement replica takes seconds to start), so a
busy machine makes this test slower, never red.
"""

from __future__ import annotations

import time

import pytest

from serve_app import ProviderRegistry, ProviderType
from tests.integration.conftest import SAMPLE

pytestmark = pytest.mark.integration

WAIT_S = 120


async def _poll(probe, done, what: str):
    """``await probe()`` until ``done(result)``; fail after WAIT_S with the last result."""
    import asyncio

    end = time.monotonic() + WAIT_S
    while not done(result := await probe()):
        assert time.monotonic() < end, f"{what}: not within {WAIT_S} s: {result}"
        await asyncio.sleep(0.25)
    return result


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
    # Both replicas have published their counts (each does so once a second).
    await _poll(scratch.get_stats, lambda s: len(s["scope"]["router_replicas"]) == 2
                and s["usage_stats"]["embeddings/h"]["calls"] >= 41, "both router replicas' stats")
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
    stats = await _poll(scratch.get_stats, lambda s: s["embedding_cache"]["hits"] >= 40
                        and s["usage_stats"]["cache/valkey"]["calls"] >= 80, "the second round's cache hits")
    assert stats["usage_stats"]["embeddings/h"]["calls"] == 41  # no new model call

    # Kill one of the two router replicas under load: Python API callers see no failure.
    import ray

    await scratch.register_provider(ProviderType.EMBEDDING, "rt", f"{SAMPLE}.HashEmbedder", {},
                                    deployment={"num_cpus": 0.1})

    failures: list[str] = []
    served: list[int] = []  # one entry per answered call
    done = asyncio.Event()

    async def caller(i: int) -> None:
        n = 0
        while not done.is_set():
            try:
                await embedder.embed_query(f"load {i} {n}")
                served.append(1)
            except Exception as exc:
                failures.append(repr(exc)[:300])
            n += 1

    async def calls_served() -> int:
        await asyncio.sleep(0)
        return len(served)

    workers = [asyncio.create_task(caller(i)) for i in range(8)]
    try:
        await _poll(calls_served, lambda n: n >= 20, "load before the kill")
        routers = [a for a in ray.util.list_named_actors(all_namespaces=True)
                   if "scratch#RegistryRouter" in a["name"]]
        assert len(routers) == 2
        ray.kill(ray.get_actor(routers[0]["name"], namespace=routers[0]["namespace"]), no_restart=True)
        at_kill = len(served)
        # Load goes on until 100 more calls came back, however long a busy machine
        # takes for that: a count, not a window of time.
        await _poll(calls_served, lambda n: n >= at_kill + 100 or failures, "calls after the kill")
    finally:
        done.set()
        await asyncio.gather(*workers)
    assert failures == [], failures[:3]
    print(f"router replica killed under load: {len(served)} calls served, {scratch.retries} retried, 0 failed")

    # The replacement replica routes by the same table, run-time registration included:
    # the table lives in GCS, not in a replica.
    new_replica = await _poll(scratch.get_stats, lambda s: s["scope"]["answered_by"] not in answered_by,
                              "an answer from the replacement router replica")
    assert "embeddings/rt" in new_replica["usage_stats"]
    # Its admin token variable (the default name) is unset: admin is disabled, and says how to enable it.

    r = httpx.post(f"http://127.0.0.1:{port}/scratch/v1/admin/providers/embeddings/h/reload",
                   headers={"Authorization": "Bearer anything"}, timeout=60)
    assert r.status_code == 403 and "PROVIDER_REGISTRY_ADMIN_TOKEN" in r.json()["error"]["message"]

    await scratch.cleanup()
    apps = serve.status().applications
    assert not [a for a in apps if a.startswith("scratch")], list(apps)
    # the main registry is untouched
    assert "registry" in apps and "registry--embeddings--minilm--v1" in apps
