"""Usage statistics add up across router replicas, percentiles included."""

from __future__ import annotations

import pytest

from providers.registry.stats import LatencyHistogram, UsageStats, describe, merge_usage


def test_percentiles_are_within_one_bucket_of_the_truth():
    h = LatencyHistogram()
    for ms in range(1, 1001):  # 1..1000 ms, uniform
        h.observe(float(ms))
    for q, truth in ((50, 500), (95, 950), (99, 990)):
        assert truth <= h.percentile(q) <= truth * 1.16


def test_empty_histogram_has_no_percentile():
    assert LatencyHistogram().percentile(50) is None


def test_merging_replicas_sums_counters_and_histograms():
    a, b = UsageStats(), UsageStats()
    for _ in range(30):
        a.calls += 1
        a.successes += 1
        a.latency.observe(2.0)
    for _ in range(10):
        b.calls += 1
        b.failures += 1
    b.calls += 70
    b.successes += 70
    b.latency.observe(200.0, 70)
    b.last_used, b.last_error = 123.0, "RuntimeError: x"
    merged = describe(merge_usage([a.snapshot(), b.snapshot()]))
    assert merged["calls"] == 110 and merged["successes"] == 100 and merged["error_count"] == 10
    # 30 fast + 70 slow successes: the median is slow, which an average of per-replica medians would miss
    assert merged["latency_ms"]["p50"] == pytest.approx(200, rel=0.16)
    assert merged["last_error"] == "RuntimeError: x" and merged["last_used"] == 123.0


def test_snapshots_are_json_round_trippable():
    import json

    s = UsageStats()
    s.latency.observe(5.0)
    snap = json.loads(json.dumps(s.snapshot()))
    assert describe(merge_usage([snap]))["latency_ms"]["p50"] == pytest.approx(5.0, rel=0.16)
