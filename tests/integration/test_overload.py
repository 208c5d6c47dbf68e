"""Overload on real Ray Serve (issue 16): a provider's full queue refuses with 503 + Retry-After.

The slow provider hangs on a fault file (no clock): one call holds its only
slot (``max_ongoing_requests: 1``), one more may wait in the router's handle
queue (``max_queued_requests: 1``); Serve refuses the rest, and the router
answers them 503 naming the provider, without counting them against its breaker.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from serve_app import ProviderType, provider_registry
from tests.integration.conftest import SAMPLE
from tests.integration.sample_providers import set_faults

pytestmark = pytest.mark.integration

WAIT_S = 120  # a deadline for conditions, never a window that must pass
CALLS = 20


async def test_a_full_provider_queue_refuses_with_503_and_retry_after(registry, tmp_path):
    name = "overloaded"
    fault_file = tmp_path / "fault"
    set_faults(fault_file, "hang")
    await provider_registry.register_provider(
        ProviderType.EMBEDDING, name, f"{SAMPLE}.HashEmbedder", {"label": name, "fault_file": str(fault_file)},
        # No batching: the router would merge the calls into one and never fill the queue.
        deployment={"num_cpus": 0.1, "max_ongoing_requests": 1, "max_queued_requests": 1,
                    "batching": {"enabled": False}},
        call_timeout_s=WAIT_S)
    try:
        async with httpx.AsyncClient(base_url=registry["http"], timeout=WAIT_S * 2,
                                     limits=httpx.Limits(max_connections=CALLS)) as client:
            tasks = [asyncio.create_task(client.post("/v1/embeddings", json={"model": name, "input": f"text {i}"}))
                     for i in range(CALLS)]
            end = time.monotonic() + WAIT_S
            while not any(t.done() for t in tasks):  # the refusals answer while the admitted hang
                assert time.monotonic() < end, f"no call answered within {WAIT_S} s while the provider hangs"
                await asyncio.sleep(0.1)
            set_faults(fault_file)  # the admitted calls complete now
            responses = await asyncio.gather(*tasks)
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) <= {200, 503}, statuses  # never a 500
        refused = [r for r in responses if r.status_code == 503]
        assert refused and len(refused) < CALLS, statuses
        for r in refused:
            assert int(r.headers["retry-after"]) >= 1
            error = r.json()["error"]
            assert f"'{name}'" in error["message"] and error["code"] == "overloaded", error
        for r in responses:
            if r.status_code == 200:
                assert len(r.json()["data"][0]["embedding"]) == 384
        usage = (await provider_registry.get_stats())["usage_stats"][f"embeddings/{name}"]
        assert usage["failures"] == 0, usage
        # No refused call opened the breaker. Health monitoring, if an earlier test of the
        # session left it on, may have probed the hanging provider and opened it: that is
        # the probe's verdict, named as such (seen once in CI: open after a health check).
        breaker = usage["circuit_breaker"]
        assert breaker["state"] == "closed" or str(breaker.get("open_reason")).startswith("health check"), usage
    finally:
        set_faults(fault_file)
        await provider_registry.delete_provider(ProviderType.EMBEDDING, name)
