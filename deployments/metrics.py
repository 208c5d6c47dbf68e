"""Prometheus metrics of the router, through ``ray.serve.metrics``.

Ray exports them from every node's metrics agent (Prometheus format), with
Serve's own tags (application, deployment, replica) added; sum over the
replica tag for the cluster figure.

    provider_registry_calls_total{type, provider, outcome}   outcome: success|failure|timeout|overloaded|unavailable
    provider_registry_call_latency_ms{type, provider}        successful calls
    provider_registry_fallback_served_total{type, provider}  calls this provider served for another
    provider_registry_embedding_cache_total{result}          texts looked up: hit|miss|error (hit ratio = hit / (hit + miss))
    provider_registry_circuit_state{type, provider}          after each call: 0 closed, 1 half-open, 2 open
"""

from __future__ import annotations

from collections.abc import Callable

from ray.serve import metrics

_LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000]
_STATE_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class RouterMetrics:
    def __init__(self, breaker_state: Callable[[str], str] | None = None) -> None:
        self.breaker_state = breaker_state  # route key -> "closed" | "half_open" | "open"
        self.calls = metrics.Counter(
            "provider_registry_calls", "Provider calls made by the router, by outcome.",
            tag_keys=("type", "provider", "outcome"))
        self.latency = metrics.Histogram(
            "provider_registry_call_latency_ms", "Latency of successful provider calls (ms).",
            boundaries=_LATENCY_BOUNDARIES_MS, tag_keys=("type", "provider"))
        self.fallback_served = metrics.Counter(
            "provider_registry_fallback_served", "Calls a provider served as another's fallback.",
            tag_keys=("type", "provider"))

        self.cache = metrics.Counter(
            "provider_registry_embedding_cache", "Texts looked up in the embedding cache, by result.",
            tag_keys=("result",))
        self.circuit = metrics.Gauge(
            "provider_registry_circuit_state", "Circuit breaker of a provider: 0 closed, 1 half-open, 2 open.",
            tag_keys=("type", "provider"))

    def record_cache(self, hits: int, misses: int, errors: int) -> None:
        for result, n in (("hit", hits), ("miss", misses), ("error", errors)):
            if n:
                self.cache.inc(n, tags={"result": result})

    def record(self, key: str, outcome: str, elapsed_ms: float, weight: int, as_fallback: bool) -> None:
        ptype, _, name = key.partition("/")
        self.calls.inc(weight, tags={"type": ptype, "provider": name, "outcome": outcome})
        if outcome == "success":
            self.latency.observe(elapsed_ms, tags={"type": ptype, "provider": name})
            if as_fallback:
                self.fallback_served.inc(weight, tags={"type": ptype, "provider": name})
        if self.breaker_state is not None:  # read after the call recorded its outcome in the breaker
            state = _STATE_VALUES.get(str(self.breaker_state(key)))
            if state is not None:
                self.circuit.set(state, tags={"type": ptype, "provider": name})
