"""Circuit breaker: stop sending calls to a provider that keeps failing.

    CLOSED ──(threshold crossed, or health check unhealthy)──> OPEN
    OPEN ──(open_s elapsed)──> HALF_OPEN
    HALF_OPEN ──(trial succeeds)──> CLOSED
    HALF_OPEN ──(trial fails)──> OPEN (timer restarts)

Two thresholds, either one opens it: ``failure_threshold`` consecutive
failures (pybreaker and Envoy's outlier detection default to 5), or a
failure rate of ``failure_rate_threshold`` over the last ``window_s`` once
at least ``min_calls`` were made there (resilience4j's model; 50% is its
default). Open lasts ``open_s`` (Envoy's base ejection is 30 s; pybreaker
waits 60 s): long enough not to hammer a restarting replica, short enough
that a recovered provider is back within a minute. While open, the router
goes straight to the fallback chain without waiting on the dead provider.

One breaker per ``(type, name)`` per router replica; time comes from an
injected clock so the state machine is tested without sleeping. ``on_change``
hears every transition (the router's event log records opens and closes):
a hook, so this module stays plain Python with no Ray and no I/O.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class BreakerOptions(BaseModel):
    """Per-provider breaker settings (the ``circuit_breaker:`` key)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Turn the breaker off for this provider.")
    failure_threshold: int = Field(5, ge=1, description="Consecutive failures that open it.")
    failure_rate_threshold: float = Field(
        0.5, gt=0, le=1, description="Failure share over the window that opens it."
    )
    window_s: float = Field(30.0, gt=0, description="Sliding window of the failure rate.")
    min_calls: int = Field(10, ge=1, description="Calls in the window before the rate counts.")
    open_s: float = Field(30.0, gt=0, description="How long it stays open before a trial.")
    half_open_max_calls: int = Field(1, ge=1, description="Trial calls allowed while half-open.")


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, options: BreakerOptions | None = None, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[BreakerState, str | None], None] | None = None) -> None:
        self.options = options or BreakerOptions()
        self.clock = clock
        self.on_change = on_change  # (new state, reason): called after each transition
        self._state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self.open_reason: str | None = None
        self.times_opened = 0
        self._trials = 0
        self._window: deque[tuple[float, bool]] = deque()  # (time, failed)

    @property
    def state(self) -> BreakerState:
        if self._state == BreakerState.OPEN and self.clock() - (self.opened_at or 0) >= self.options.open_s:
            self._state = BreakerState.HALF_OPEN
            self._trials = 0
            self._changed(None)
        return self._state

    def allow(self) -> bool:
        """Whether a call may go to the provider now (a half-open trial counts)."""
        if not self.options.enabled:
            return True
        state = self.state
        if state == BreakerState.CLOSED:
            return True
        if state == BreakerState.HALF_OPEN and self._trials < self.options.half_open_max_calls:
            self._trials += 1
            return True
        return False

    def seconds_until_trial(self) -> float:
        """While open: how long until a trial call may go through (0 otherwise)."""
        if self._state != BreakerState.OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.options.open_s - (self.clock() - self.opened_at))

    def release_trial(self) -> None:
        """A half-open trial call that proved nothing (Serve refused it: the provider was
        busy, not broken) is given back, or the breaker would stay half-open with no
        trial left until a health probe."""
        if self._state == BreakerState.HALF_OPEN and self._trials > 0:
            self._trials -= 1

    def record_success(self) -> None:
        self._remember(failed=False)
        self.consecutive_failures = 0
        if self._state == BreakerState.HALF_OPEN:
            self._close()

    def record_failure(self, reason: str = "") -> None:
        self._remember(failed=True)
        self.consecutive_failures += 1
        if not self.options.enabled:
            return
        if self._state == BreakerState.HALF_OPEN:
            self.open(f"trial call failed: {reason}")
        elif self._state == BreakerState.CLOSED:
            if self.consecutive_failures >= self.options.failure_threshold:
                self.open(f"{self.consecutive_failures} consecutive failures; last: {reason}")
            elif self._rate_exceeded():
                self.open(f"failure rate over {self.options.window_s:g}s above "
                          f"{self.options.failure_rate_threshold:.0%}; last: {reason}")

    def open(self, reason: str) -> None:
        """Open now (also used by health monitoring on an unhealthy probe)."""
        if not self.options.enabled:
            return
        opening = self._state != BreakerState.OPEN
        if opening:
            self.times_opened += 1
        self._state = BreakerState.OPEN
        self.opened_at = self.clock()
        self.open_reason = reason
        self._trials = 0
        if opening:
            self._changed(reason)

    def probe_healthy(self) -> None:
        """A health probe answered healthy: an open breaker lets a trial call through now
        instead of waiting out ``open_s`` (a provider back after a restart serves at once;
        one that still fails its calls costs one trial and opens again)."""
        if self._state == BreakerState.OPEN:
            self._state = BreakerState.HALF_OPEN
            self._trials = 0
            self._changed("health check healthy")

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self.opened_at = None
        self.open_reason = None
        self.consecutive_failures = 0
        self._window.clear()
        self._changed(None)

    def _changed(self, reason: str | None) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self._state, reason)
        except Exception:  # noqa: BLE001 - a listener (the event log) must never fail a call
            pass

    def _remember(self, failed: bool) -> None:
        now = self.clock()
        self._window.append((now, failed))
        while self._window and now - self._window[0][0] > self.options.window_s:
            self._window.popleft()

    def _rate_exceeded(self) -> bool:
        calls = len(self._window)
        if calls < self.options.min_calls:
            return False
        failures = sum(1 for _, failed in self._window if failed)
        return failures / calls >= self.options.failure_rate_threshold

    def snapshot(self) -> dict[str, Any]:
        state = self.state
        retry_in = None
        if state == BreakerState.OPEN and self.opened_at is not None:
            retry_in = round(max(0.0, self.options.open_s - (self.clock() - self.opened_at)), 3)
        return {
            "state": state.value,
            "consecutive_failures": self.consecutive_failures,
            "times_opened": self.times_opened,
            "open_reason": self.open_reason,
            "retry_in_s": retry_in,
        }
