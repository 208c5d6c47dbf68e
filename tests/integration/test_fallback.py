"""Per-call fallback on real Ray: a provider that raises or hangs is replaced, call by call.

Faults start and stop on triggers (a config flag, or a fault file the test
writes), never at a wall-clock moment; waits poll for their condition with a
generous deadline, so a busy machine is slower, not red.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest

from providers.errors import ProviderCallError, ProviderTimeoutError
from serve_app import ProviderType, get_provider_with_fallback, provider_registry
from tests.integration.conftest import SAMPLE
from tests.integration.sample_providers import set_faults

pytestmark = pytest.mark.integration

WAIT_S = 120  # a deadline for conditions that take a second or two on an idle machine


async def _usage(name: str) -> dict:
    return (await provider_registry.get_stats())["usage_stats"].get(f"embeddings/{name}", {})


async def _wait_for(name: str, predicate, what: str) -> dict:
    """Poll ``name``'s usage stats until ``predicate`` holds; fail after WAIT_S."""
    end = time.monotonic() + WAIT_S
    usage = await _usage(name)
    while not predicate(usage):
        assert time.monotonic() < end, f"{what}: not within {WAIT_S} s: {usage}"
        await asyncio.sleep(0.3)
        usage = await _usage(name)
    return usage


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
        r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "flaky", "input": ["a"]}, timeout=60)
        assert r.status_code == 200
        stats = (await provider_registry.get_stats())["usage_stats"]
        assert stats["embeddings/hash"]["served_as_fallback"] >= 4
        assert stats["embeddings/flaky"]["failures"] >= 4
    finally:
        await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "flaky", [])
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "flaky")


async def test_hung_primary_costs_its_deadline_not_the_hang(registry, tmp_path):
    """The primary hangs until the test lets it go: only its 0.5 s deadline can end a call."""
    faults = tmp_path / "faults"
    set_faults(faults, "hang")
    await _register("sleepy", fault_file=str(faults))
    try:
        await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "sleepy", "hash")
        embedder = await get_provider_with_fallback(ProviderType.EMBEDDING, "sleepy")
        hash_direct = await provider_registry.get_provider(ProviderType.EMBEDDING, "hash")
        vectors = await asyncio.wait_for(embedder.embed_texts(["late"]), WAIT_S)  # a hang fails here
        np.testing.assert_allclose(vectors[0], await hash_direct.embed_query("late"), atol=1e-6)
        usage = await _usage("sleepy")
        # cut by its own deadline (call_timeout_s), not by some longer default
        assert usage["timeouts"] == 1 and "missed its 0.5s deadline" in usage["last_error"], usage
        plain = await provider_registry.get_provider(ProviderType.EMBEDDING, "sleepy")
        with pytest.raises(ProviderTimeoutError, match="0.5s deadline"):
            await asyncio.wait_for(plain.embed_texts(["late"]), WAIT_S)
        r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "sleepy", "input": ["a"]}, timeout=WAIT_S)
        assert r.status_code == 200
        assert (await _usage("sleepy"))["timeouts"] == 3
    finally:
        set_faults(faults)  # let the hung calls finish, so the replica stops at once
        await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "sleepy", [])
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "sleepy")


async def test_malformed_answers_are_failures_and_the_fallback_serves(registry):
    """Wrong-length NaN vectors never reach a caller: the router checks every answer."""
    await _register("garbled", malformed=True)
    try:
        plain = await provider_registry.get_provider(ProviderType.EMBEDDING, "garbled")
        with pytest.raises(ProviderCallError, match="malformed result: .*(vectors for|NaN)"):
            await plain.embed_texts(["a", "b"])
        await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "garbled", "hash")
        r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "garbled", "input": ["a", "b"]}, timeout=60)
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
        r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "doomed", "input": ["a"]}, timeout=60)
        assert r.status_code == 502
        assert "doomed" in r.json()["error"]["message"] and "fails on purpose" in r.json()["error"]["message"]
        stats = httpx.get(registry["http"] + "/v1/stats", timeout=60).json()["usage_stats"]["embeddings/doomed"]
        assert stats["failures"] >= 1 and "fails on purpose" in stats["last_error"]
        # Once its breaker opens, the provider is known down: 503 at once, naming it and
        # why, with Retry-After (the seconds until a trial call), and it is not called.
        for _ in range(20):
            r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "doomed", "input": ["a"]}, timeout=60)
            if r.status_code != 502:
                break
        assert r.status_code == 503, r.text
        message = r.json()["error"]["message"]
        assert "'doomed' is unavailable" in message and "circuit open" in message and "fails on purpose" in message
        assert int(r.headers["retry-after"]) >= 1 and r.json()["error"]["code"] == "ProviderUnavailableError"
        calls = httpx.get(registry["http"] + "/v1/stats", timeout=60).json()["usage_stats"]["embeddings/doomed"]["calls"]
        r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "doomed", "input": ["a"]}, timeout=60)
        assert r.status_code == 503
        after = httpx.get(registry["http"] + "/v1/stats", timeout=60).json()["usage_stats"]["embeddings/doomed"]["calls"]
        assert after == calls
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


async def test_breaker_stops_calls_to_a_failing_primary_then_recovers(registry, tmp_path):
    """Open after the threshold (no more calls reach it), half-open after open_s, closed once healed.

    The primary fails until the test heals it. Whatever the machine's speed,
    every call that reaches it past the threshold must be the one trial of a
    half-open period, which fails and opens the breaker again.
    """
    faults = tmp_path / "faults"
    set_faults(faults, "fail")
    await provider_registry.register_provider(
        ProviderType.EMBEDDING, "healing", f"{SAMPLE}.HashEmbedder",
        {"label": "healing", "fault_file": str(faults)},
        deployment={"num_cpus": 0.1}, call_timeout_s=2, fallback=["hash"],
        circuit_breaker={"failure_threshold": 2, "open_s": 2.0, "half_open_max_calls": 1})
    try:
        embedder = await get_provider_with_fallback(ProviderType.EMBEDDING, "healing")
        for i in range(6):
            await embedder.embed_query(f"q{i}")  # every call succeeds, through the fallback
        usage = await _usage("healing")
        breakers = usage["circuit_breaker"]["per_router_replica"].values()
        opened = sum(b["times_opened"] for b in breakers)
        assert usage["failures"] == usage["calls"] >= 2 and opened >= 1, usage
        # calls after the threshold never reached it: at most one trial per time it opened
        assert usage["calls"] == 2 + (opened - 1), usage
        assert usage["circuit_breaker"]["state"] in ("open", "half_open"), usage

        set_faults(faults)  # healed: the next trial, once open_s has passed, succeeds
        end = time.monotonic() + WAIT_S
        while True:
            await embedder.embed_query("probe")
            usage = await _usage("healing")
            if usage["circuit_breaker"]["state"] == "closed" and usage["successes"] > 0:
                break
            assert time.monotonic() < end, f"the breaker did not close within {WAIT_S} s: {usage}"
            await asyncio.sleep(0.3)
        opened = [b["times_opened"] for b in usage["circuit_breaker"]["per_router_replica"].values()]
        assert max(opened) >= 1 and usage["successes"] >= 1
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "healing")


async def test_an_unhealthy_probe_opens_the_breaker_before_any_call_fails(registry, tmp_path):
    faults = tmp_path / "faults"
    await provider_registry.register_provider(
        ProviderType.EMBEDDING, "degrading", f"{SAMPLE}.HashEmbedder",
        {"label": "degrading", "fault_file": str(faults)},
        deployment={"num_cpus": 0.1, "health_check_period_s": 60}, fallback=["hash"],
        circuit_breaker={"open_s": 3600})
    try:
        assert (await provider_registry.health_check(ProviderType.EMBEDDING, "degrading"))["status"] == "healthy"
        set_faults(faults, "unhealthy")  # from now on its health check says so; its calls would still work
        report = await provider_registry.health_check(ProviderType.EMBEDDING, "degrading")
        assert report["status"] == "unhealthy" and report["last_success_at"] is not None
        listed = (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]["degrading"]
        assert listed["circuit_breaker"]["state"] == "open"
        assert "health check" in listed["circuit_breaker"]["open_reason"]
        embedder = await get_provider_with_fallback(ProviderType.EMBEDDING, "degrading")
        await embedder.embed_query("served by the fallback")
        usage = await _usage("degrading")
        assert usage.get("calls", 0) == 0  # never reached: the breaker was already open
    finally:
        set_faults(faults)
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "degrading")


async def test_killed_primary_replica_fallback_serves_then_traffic_returns(registry):
    """ray.kill the primary's replica under load: no call fails; after Ray restores it, it serves again."""
    import ray

    await provider_registry.register_provider(
        ProviderType.EMBEDDING, "victim", f"{SAMPLE}.HashEmbedder", {"label": "victim"},
        deployment={"num_cpus": 0.1}, call_timeout_s=1.0, fallback=["hash"],
        circuit_breaker={"failure_threshold": 2, "open_s": 2.0})
    failures: list[str] = []
    done = asyncio.Event()
    try:
        embedder = await get_provider_with_fallback(ProviderType.EMBEDDING, "victim")

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
        before = await _wait_for("victim", lambda s: s.get("successes", 0) >= 20, "load on the primary")
        replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                    if "registry--embeddings--victim--v1#ProviderDeployment" in a["name"]]
        assert len(replicas) == 1
        ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)

        # 1. the kill bites: the fallback serves and the breaker opens
        during = await _wait_for("victim", lambda s: s["fell_back"] > before["fell_back"]
                                 and any(b["times_opened"] >= 1 for b in s["circuit_breaker"]["per_router_replica"].values()),
                                 "fallback and an open breaker after the kill")
        # 2. Ray restores the replica; a half-open trial closes the breaker; the primary serves again
        await _wait_for("victim", lambda s: s["circuit_breaker"]["state"] == "closed"
                        and s["successes"] > during["successes"] + 20, "the primary serving again")
        done.set()
        await asyncio.gather(*workers)
        assert failures == [], failures[:3]
    finally:
        done.set()
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "victim")
