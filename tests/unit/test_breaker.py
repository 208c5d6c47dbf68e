"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from providers.registry.breaker import BreakerOptions, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**options) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(BreakerOptions(**options), clock), clock


def test_defaults_follow_the_documented_reasoning():
    o = BreakerOptions()
    assert (o.failure_threshold, o.failure_rate_threshold, o.open_s) == (5, 0.5, 30.0)


def test_consecutive_failures_open_it():
    b, _ = make(failure_threshold=3, min_calls=100)
    for _ in range(2):
        b.record_failure("boom")
        assert b.state == BreakerState.CLOSED and b.allow()
    b.record_failure("boom")
    assert b.state == BreakerState.OPEN and not b.allow()
    assert "3 consecutive failures" in b.open_reason and "boom" in b.open_reason


def test_a_success_resets_the_consecutive_count():
    b, _ = make(failure_threshold=3, min_calls=100)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state == BreakerState.CLOSED


def test_failure_rate_over_the_window_opens_it():
    b, clock = make(failure_threshold=100, failure_rate_threshold=0.5, min_calls=4, window_s=10)
    for failed in (False, True, False, True):  # the rate is judged when a failure lands
        clock.now += 1
        b.record_failure("x") if failed else b.record_success()
    assert b.state == BreakerState.OPEN
    assert "failure rate" in b.open_reason


def test_old_calls_leave_the_window():
    b, clock = make(failure_threshold=100, failure_rate_threshold=0.5, min_calls=4, window_s=10)
    for _ in range(3):
        b.record_failure()
    clock.now += 11  # those three are out of the window now
    for _ in range(3):
        b.record_success()
    b.record_failure()
    assert b.state == BreakerState.CLOSED


def test_open_then_half_open_then_closed_on_a_good_trial():
    b, clock = make(failure_threshold=1, open_s=30, half_open_max_calls=1)
    b.record_failure()
    clock.now += 29.9
    assert not b.allow()
    clock.now += 0.2
    assert b.state == BreakerState.HALF_OPEN
    assert b.allow() is True      # the one trial
    assert b.allow() is False     # no second trial while the first is out
    b.record_success()
    assert b.state == BreakerState.CLOSED and b.allow()


def test_a_failed_trial_reopens_and_restarts_the_timer():
    b, clock = make(failure_threshold=1, open_s=30)
    b.record_failure()
    clock.now += 31
    assert b.allow()
    b.record_failure("still down")
    assert b.state == BreakerState.OPEN and "trial call failed" in b.open_reason
    clock.now += 29
    assert not b.allow()
    assert b.times_opened == 2


def test_health_check_can_open_it_and_snapshot_reports_it():
    b, clock = make(open_s=10)
    b.open("health check: unhealthy")
    snap = b.snapshot()
    assert snap["state"] == "open" and snap["retry_in_s"] == pytest.approx(10)
    clock.now += 4
    assert b.snapshot()["retry_in_s"] == pytest.approx(6)


def test_disabled_breaker_never_blocks():
    b, _ = make(enabled=False, failure_threshold=1)
    for _ in range(10):
        b.record_failure()
    b.open("ignored")
    assert b.allow() and b.state == BreakerState.CLOSED


def test_a_healthy_probe_lets_a_trial_through_before_open_s():
    b, clock = make(failure_threshold=1, open_s=30)
    b.record_failure("down")
    assert b.state == BreakerState.OPEN and not b.allow()
    clock.now += 1  # far inside open_s
    b.probe_healthy()
    assert b.state == BreakerState.HALF_OPEN and b.allow() and not b.allow()  # one trial
    b.record_success()
    assert b.state == BreakerState.CLOSED
    b.record_failure("down again")
    b.probe_healthy()
    assert b.allow()
    b.record_failure("still failing its calls")  # healthy probe, failing calls: open again
    assert b.state == BreakerState.OPEN and not b.allow()
    b._close()
    b.probe_healthy()  # no effect on a closed breaker
    assert b.state == BreakerState.CLOSED
