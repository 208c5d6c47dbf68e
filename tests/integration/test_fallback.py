"""Per-call fallback on real Ray: a provider that raises or hangs is replaced, call by call."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from providers.errors import ProviderCallError, ProviderTimeoutError
from serve_app import ProviderType, get_provider_with_fallback, provider_registry
from tests.integration.conftest import SAMPLE

pytestmark = pytest.mark.integration


async def _register(name: str, **config) -> None:
    await provider_registry.register_provider(
        ProviderType.EMBEDDING, name, f"{SAMPLE}.HashEmbedder", {"label": name, **config},
        deployment={"num_cpus": 0.1}, call_timeout_s=0.5)


async def test_raising_primary_is_served_by_the_fallback_per_call(registry):
    await _register("flaky", fail=True)
    try:
        assert await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, primary_name="flaky", fallback_name="hash")
        plain = await provider_registry.get_provider(ProviderType.EMBEDDING, "flaky")
        with pytest.raises(ProviderCallError, match="fails on purpose"):
            await plain.embed_texts(["x"])

        embedder = await get_provider_with_fallback(ProviderType.EMBEDDING, "flaky")
        hash_direct = await provider_registry.get_provider(ProviderType.EMBEDDING, "hash")
        for text in ["a", "b", "c"]:  # every call, not just the lookup
            got = await embedder.embed_query(text)
            np.testing.assert_allclose(got, await hash_direct.embed_query(text), atol=1e-6)
        r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "flaky", "input": ["a"]})
        assert r.status_code == 200
        stats = (await provider_registry.get_stats())["usage_stats"]
        assert stats["embeddings/hash"]["served_as_fallback"] >= 4
        assert stats["embeddings/flaky"]["failures"] >= 4
    finally:
        await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "flaky", [])
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "flaky")


async def test_hung_primary_costs_at_most_its_deadline(registry):
    await _register("sleepy", delay_s=10)
    try:
        await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "sleepy", "hash")
        embedder = await get_provider_with_fallback(ProviderType.EMBEDDING, "sleepy")
        start = time.monotonic()
        vectors = await embedder.embed_texts(["late"])
        elapsed = time.monotonic() - start
        assert len(vectors) == 1 and elapsed < 3.0, elapsed  # deadline 0.5 s, plus the fallback
        plain = await provider_registry.get_provider(ProviderType.EMBEDDING, "sleepy")
        with pytest.raises(ProviderTimeoutError):
            await plain.embed_texts(["late"])
        r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "sleepy", "input": ["a"]}, timeout=30)
        assert r.status_code == 200
    finally:
        await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "sleepy", [])
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "sleepy")


async def test_malformed_answers_are_failures_and_the_fallback_serves(registry):
    """Wrong-length NaN vectors never reach a caller: the router checks every answer."""
    await _register("garbled", malformed_until=time.time() + 3600)
    try:
        plain = await provider_registry.get_provider(ProviderType.EMBEDDING, "garbled")
        with pytest.raises(ProviderCallError, match="malformed result: .*(vectors for|NaN)"):
            await plain.embed_texts(["a", "b"])
        await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "garbled", "hash")
        r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "garbled", "input": ["a", "b"]})
        assert r.status_code == 200, r.text
        vectors = [d["embedding"] for d in r.json()["data"]]
        assert len(vectors) == 2 and all(np.isfinite(v).all() and len(v) == 384 for v in vectors)
        stats = (await provider_registry.get_stats())["usage_stats"]["embeddings/garbled"]
        assert stats["failures"] >= 2
    finally:
        await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "garbled", [])
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "garbled")


async def test_failure_without_fallback_is_a_clear_5xx_over_http(registry):
    await _register("doomed", fail=True)
    try:
        r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "doomed", "input": ["a"]})
        assert r.status_code == 502
        assert "doomed" in r.json()["error"]["message"] and "fails on purpose" in r.json()["error"]["message"]
        stats = httpx.get(registry["http"] + "/v1/stats").json()["usage_stats"]["embeddings/doomed"]
        assert stats["failures"] >= 1 and "fails on purpose" in stats["last_error"]
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "doomed")


async def test_fallback_cycle_is_refused(registry):
    from providers.errors import ConfigError

    await _register("loop-a")
    try:
        await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "loop-a", "hash")
        with pytest.raises(ConfigError, match="cycle"):
            await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "hash", "loop-a")
    finally:
        await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "loop-a", [])
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "loop-a")


async def test_breaker_stops_calls_to_a_failing_primary_then_recovers(registry):
    """Open after the threshold (no more calls reach it), half-open after open_s, closed once healed."""
    import asyncio

    await provider_registry.register_provider(
        ProviderType.EMBEDDING, "healing", f"{SAMPLE}.HashEmbedder",
        {"label": "healing", "fail_until": time.time() + 4},
        deployment={"num_cpus": 0.1}, call_timeout_s=2, fallback=["hash"],
        circuit_breaker={"failure_threshold": 2, "open_s": 1.0})
    try:
        embedder = await get_provider_with_fallback(ProviderType.EMBEDDING, "healing")
        for i in range(6):
            await embedder.embed_query(f"q{i}")  # every call succeeds, through the fallback
        usage = (await provider_registry.get_stats())["usage_stats"]["embeddings/healing"]
        assert usage["failures"] == 2 and usage["circuit_breaker"]["state"] == "open"
        assert usage["calls"] == 2  # calls after the threshold never reached it

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await embedder.embed_query("probe")
            usage = (await provider_registry.get_stats())["usage_stats"]["embeddings/healing"]
            if usage["circuit_breaker"]["state"] == "closed" and usage["successes"] > 0:
                break
            await asyncio.sleep(0.3)
        assert usage["circuit_breaker"]["state"] == "closed", usage
        opened = [b["times_opened"] for b in usage["circuit_breaker"]["per_router_replica"].values()]
        assert max(opened) >= 1 and usage["successes"] >= 1
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "healing")


async def test_an_unhealthy_probe_opens_the_breaker_before_any_call_fails(registry):
    await provider_registry.register_provider(
        ProviderType.EMBEDDING, "degrading", f"{SAMPLE}.HashEmbedder",
        {"label": "degrading", "unhealthy_from": time.time() + 3},
        deployment={"num_cpus": 0.1, "health_check_period_s": 60}, fallback=["hash"],
        circuit_breaker={"open_s": 60})
    try:
        assert (await provider_registry.health_check(ProviderType.EMBEDDING, "degrading"))["status"] == "healthy"
        import asyncio

        await asyncio.sleep(3.5)
        report = await provider_registry.health_check(ProviderType.EMBEDDING, "degrading")
        assert report["status"] == "unhealthy" and report["last_success_at"] is not None
        listed = (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]["degrading"]
        assert listed["circuit_breaker"]["state"] == "open"
        assert "health check" in listed["circuit_breaker"]["open_reason"]
        embedder = await get_provider_with_fallback(ProviderType.EMBEDDING, "degrading")
        await embedder.embed_query("served by the fallback")
        usage = (await provider_registry.get_stats())["usage_stats"].get("embeddings/degrading", {})
        assert usage.get("calls", 0) == 0  # never reached: the breaker was already open
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "degrading")


async def test_killed_primary_replica_fallback_serves_then_traffic_returns(registry):
    """ray.kill the primary's replica under load: no call fails; after Ray restores it, it serves again."""
    import asyncio

    import ray

    await provider_registry.register_provider(
        ProviderType.EMBEDDING, "victim", f"{SAMPLE}.HashEmbedder", {"label": "victim"},
        deployment={"num_cpus": 0.1}, call_timeout_s=1.0, fallback=["hash"],
        circuit_breaker={"failure_threshold": 2, "open_s": 2.0})
    try:
        embedder = await get_provider_with_fallback(ProviderType.EMBEDDING, "victim")
        failures: list[str] = []
        done = asyncio.Event()

        async def caller(i: int) -> None:
            n = 0
            while not done.is_set():
                try:
                    await embedder.embed_query(f"v{i} {n}")
                except Exception as exc:
                    failures.append(repr(exc)[:300])
                n += 1
                await asyncio.sleep(0.02)

        workers = [asyncio.create_task(caller(i)) for i in range(4)]
        await asyncio.sleep(1.0)
        before = (await provider_registry.get_stats())["usage_stats"]["embeddings/victim"]
        replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                    if "registry--embeddings--victim--v1#ProviderDeployment" in a["name"]]
        assert len(replicas) == 1
        ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)

        async def wait_for(predicate, timeout_s: float) -> dict:
            end = time.monotonic() + timeout_s
            while time.monotonic() < end:
                await asyncio.sleep(0.3)
                now = (await provider_registry.get_stats())["usage_stats"]["embeddings/victim"]
                if predicate(now):
                    return now
            raise AssertionError(f"not reached: {now}")

        # 1. the kill bites: the fallback serves and the breaker opens
        during = await wait_for(lambda s: s["fell_back"] > before["fell_back"]
                                and any(b["times_opened"] >= 1 for b in s["circuit_breaker"]["per_router_replica"].values()), 20)
        # 2. Ray restores the replica; a half-open trial closes the breaker; the primary serves again
        await wait_for(lambda s: s["circuit_breaker"]["state"] == "closed"
                       and s["successes"] > during["successes"] + 20, 40)
        done.set()
        await asyncio.gather(*workers)
        assert failures == [], failures[:3]
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "victim")
