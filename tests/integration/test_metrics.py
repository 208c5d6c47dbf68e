"""The router's Prometheus metrics reach Ray's metrics export."""

from __future__ import annotations

import time

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_router_metrics_are_exported(registry):
    import ray

    port = ray._private.worker._global_node.metrics_export_port
    for _ in range(3):
        assert httpx.post(registry["http"] + "/v1/embeddings", json={"model": "hash", "input": ["m"]}, timeout=60).status_code == 200
    deadline = time.monotonic() + 120  # Ray pushes metrics to its agent every few seconds
    text = ""
    while time.monotonic() < deadline:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            text = ""
        circuit = [ln for ln in text.splitlines() if "provider_registry_circuit_state" in ln and 'provider="hash"' in ln]
        if "provider_registry_calls" in text and 'provider="hash"' in text and circuit:
            break
        time.sleep(2)
    lines = [ln for ln in text.splitlines() if ln.startswith("ray_provider_registry_calls") or ln.startswith("provider_registry_calls")]
    assert any('provider="hash"' in ln and 'outcome="success"' in ln for ln in lines), text[:2000]
    assert "provider_registry_call_latency_ms" in text
    # the same text three times: the embedding cache answered at least twice
    cache = [ln for ln in text.splitlines() if "provider_registry_embedding_cache" in ln and 'result="hit"' in ln]
    assert cache, "no embedding cache hit exported"
    assert circuit and float(circuit[0].rsplit(" ", 1)[1]) == 0.0, circuit  # closed
