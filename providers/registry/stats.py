"""Usage statistics that add up across router replicas.

Each router replica counts its own calls (`UsageStats`) and publishes a
snapshot; `merge_usage` sums snapshots into the cluster-wide figures.
Latency percentiles survive the merge because they come from a fixed-bucket
histogram (bucket counts add; percentiles of averages would not).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

# Bucket upper bounds in ms: 0.25 ms to about 2 minutes, 15% apart, so any
# percentile is reported within 15% of the truth.
_BOUNDS_MS = [0.25 * 1.15**i for i in range(int(math.log(120_000 / 0.25, 1.15)) + 2)]


@dataclass
class LatencyHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(_BOUNDS_MS) + 1))

    def observe(self, ms: float, n: int = 1) -> None:
        self.counts[bisect.bisect_left(_BOUNDS_MS, ms)] += n

    def add(self, other_counts: list[int]) -> None:
        for i, c in enumerate(other_counts[: len(self.counts)]):
            self.counts[i] += c

    def percentile(self, q: float) -> float | None:
        total = sum(self.counts)
        if not total:
            return None
        rank = q / 100 * total
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return round(_BOUNDS_MS[min(i, len(_BOUNDS_MS) - 1)], 3)
        return round(_BOUNDS_MS[-1], 3)


_COUNTERS = ("calls", "successes", "failures", "timeouts", "served_as_fallback", "fell_back")


@dataclass
class UsageStats:
    calls: int = 0
    successes: int = 0
    failures: int = 0
    timeouts: int = 0
    served_as_fallback: int = 0  # successes where this provider stood in for another
    fell_back: int = 0  # calls to this provider as primary that a fallback served
    last_error: str | None = None
    last_used: float | None = None
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able and mergeable (see `merge_usage`)."""
        return {**{k: getattr(self, k) for k in _COUNTERS}, "last_error": self.last_error,
                "last_used": self.last_used, "latency_counts": list(self.latency.counts)}

    def as_dict(self) -> dict[str, Any]:
        return describe(self.snapshot())


def merge_usage(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum snapshots of one provider from several router replicas."""
    total: dict[str, Any] = {k: 0 for k in _COUNTERS}
    hist = LatencyHistogram()
    newest = -1.0
    total["last_error"], total["last_used"] = None, None
    for snap in snapshots:
        for k in _COUNTERS:
            total[k] += int(snap.get(k, 0))
        hist.add(snap.get("latency_counts", []))
        used = snap.get("last_used") or 0.0
        if used > newest:
            newest = used
            total["last_used"] = snap.get("last_used")
            total["last_error"] = snap.get("last_error") or total["last_error"]
    total["latency_counts"] = hist.counts
    return total


def describe(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot as shown to people: counters plus latency percentiles (ms)."""
    hist = LatencyHistogram(list(snapshot.get("latency_counts", [])) or LatencyHistogram().counts)
    out = {k: snapshot.get(k, 0) for k in _COUNTERS}
    out.update({
        "error_count": snapshot.get("failures", 0),
        "latency_ms": {"p50": hist.percentile(50), "p95": hist.percentile(95), "p99": hist.percentile(99)},
        "last_error": snapshot.get("last_error"),
        "last_used": snapshot.get("last_used"),
    })
    return out
