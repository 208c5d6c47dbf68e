"""The routing core: call a provider, and on failure its fallbacks, within deadlines.

Plain asyncio, no Ray: the router deployment supplies ``attempt`` (one call to
one provider's replicas) and this module decides the order, the deadline of
each try and what counts as a failure. A circuit breaker per provider
(`providers.registry.breaker`) decides whether a provider is tried at all:
an open one is skipped without waiting on it, straight to the fallback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from providers.errors import (
    EmbeddingSpaceMismatchError,
    InvalidRequestError,
    ProviderCallError,
    ProviderNotFoundError,
    ProviderOverloadedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RegistryBusyError,
    is_backpressure,
)
from providers.registry.breaker import BreakerOptions, BreakerState, CircuitBreaker
from providers.registry.stats import UsageStats

T = TypeVar("T")

# Errors that say the *caller* is wrong: trying a fallback cannot fix them,
# and they must reach the caller as the 4xx they are.
# A store of another embedding space is the operator's to fix (re-embed), and
# a store frozen for a moment (RegistryBusyError) must not have its writes
# diverted to a fallback store: neither is a fallback's to serve.
CALLER_ERRORS: tuple[type[BaseException], ...] = (InvalidRequestError, ProviderNotFoundError,
                                                  EmbeddingSpaceMismatchError, RegistryBusyError)


@dataclass
class Attempt:
    name: str
    error: str | None
    elapsed_s: float
    overloaded: bool = False  # refused by Serve's queue limit: busy, not failed
    retry_in_s: float | None = None  # skipped: seconds until its breaker lets a trial call through
    unavailable: bool = False  # late, and no replica of it reachable: given up before the deadline

    @property
    def skipped(self) -> bool:
        return (self.error or "").startswith("skipped, circuit open")


@dataclass
class FallbackCaller:
    """Tries ``chain`` in order; the first success wins.

    ``attempt(name, timeout_s)`` performs one call. ``timeout_of(name)`` is
    that provider's per-call deadline. ``scrub`` cleans error text (secrets)
    before it is recorded or raised.
    """

    stats: dict[str, UsageStats] = field(default_factory=dict)
    scrub: Callable[[str], str] = lambda s: s
    clock: Callable[[], float] = time.monotonic
    breaker_options: Callable[[str], BreakerOptions] = lambda key: BreakerOptions()
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    # Called once per provider attempt: (key, outcome, elapsed_ms, weight, as_fallback),
    # outcome "success" | "failure" | "timeout" | "overloaded". The router exports it as metrics.
    on_attempt: Callable[[str, str, float, int, bool], None] = lambda *a: None
    # Called on each breaker transition: (key, new state, reason); the router's event log.
    on_breaker: Callable[[str, str, str | None], None] | None = None
    # The Retry-After of a call refused because every provider tried was overloaded.
    retry_after_s: float = 1.0
    # ``await liveness(kind, name)`` when a call is half-way to its deadline: None while the
    # provider has a live replica (or nothing can be told), else why it has none
    # (deployments/liveness.py). None here: every call waits out its deadline.
    liveness: Callable[[str, str], Awaitable[str | None]] | None = None
    probe_at: float = 0.5  # the share of the deadline a call waits before liveness is asked

    def usage(self, key: str) -> UsageStats:
        return self.stats.setdefault(key, UsageStats())

    def breaker(self, key: str) -> CircuitBreaker:
        """This provider's breaker, following its current options (they change on reload)."""
        options = self.breaker_options(key)
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = self.breakers[key] = CircuitBreaker(options, self.clock, self._breaker_listener(key))
        elif breaker.options != options:
            breaker.options = options
        return breaker

    def _breaker_listener(self, key: str) -> Callable[[BreakerState, str | None], None] | None:
        hook = self.on_breaker
        if hook is None:
            return None
        return lambda state, reason: hook(key, state.value, reason)

    def should_try(self, key: str) -> bool:
        """False skips this provider without calling it (its breaker is open)."""
        return self.breaker(key).allow()

    async def call(
        self,
        kind: str,
        chain: list[str],
        attempt: Callable[[str, float], Awaitable[T]],
        timeout_of: Callable[[str], float],
        weight: int = 1,
    ) -> T:
        """``weight``: how many callers this call serves (a coalesced batch counts each)."""
        tried: list[Attempt] = []
        for position, name in enumerate(chain):
            key = f"{kind}/{name}"
            if not self.should_try(key):
                breaker = self.breaker(key)
                reason = breaker.open_reason or "circuit open"
                tried.append(Attempt(name, f"skipped, circuit open ({reason})", 0.0,
                                     retry_in_s=breaker.seconds_until_trial()))
                continue
            stats = self.usage(key)
            stats.calls += weight
            stats.last_used = time.time()
            timeout = timeout_of(name)
            start = self.clock()
            # wait() instead of wait_for(): on Python 3.11 asyncio.TimeoutError is
            # the builtin TimeoutError, so a provider raising its own TimeoutError
            # would be misreported as a missed deadline.
            task = asyncio.ensure_future(attempt(name, timeout))
            try:
                done, dead = await self._wait(task, kind, name, timeout)
            except asyncio.CancelledError:
                task.cancel()
                raise
            if dead is not None:
                # Nothing alive behind it: say so now rather than at the deadline. A failure
                # like any other for the breaker, which answers at once once it has opened.
                task.cancel()
                message = self.scrub(f"no live replica: {dead}")
                stats.failures += weight
                stats.last_error = message
                self.breaker(key).record_failure(message)
                self.on_attempt(key, "unavailable", (self.clock() - start) * 1000, weight, position > 0)
                tried.append(Attempt(name, message, self.clock() - start, unavailable=True,
                                     retry_in_s=self.breaker(key).seconds_until_trial()))
                continue
            if not done:
                task.cancel()
                message, outcome = f"missed its {timeout:g}s deadline", "timeout"
                stats.timeouts += weight
            else:
                try:
                    result = task.result()
                except CALLER_ERRORS:
                    # The caller's mistake says nothing about the provider's health.
                    stats.failures += weight
                    self.breaker(key).record_success()
                    raise
                except Exception as exc:  # any provider failure moves on to the fallback
                    if is_overload(exc):
                        # Serve refused the call (the provider's queue is full): the provider is
                        # busy, not broken. Its breaker must not count it, or a burst would open
                        # the breaker and turn "come back in a second" into "down for open_s";
                        # a fallback may serve (it has queues of its own).
                        message = f"overloaded, call refused ({self.scrub(describe_error(exc))})"
                        self.breaker(key).release_trial()
                        stats.last_error = message
                        self.on_attempt(key, "overloaded", (self.clock() - start) * 1000, weight, position > 0)
                        tried.append(Attempt(name, message, self.clock() - start, overloaded=True))
                        continue
                    message, outcome = self.scrub(describe_error(exc)), "failure"
                else:
                    self.breaker(key).record_success()
                    stats.successes += weight
                    elapsed_ms = (self.clock() - start) * 1000
                    stats.latency.observe(elapsed_ms, weight)
                    self.on_attempt(key, "success", elapsed_ms, weight, position > 0)
                    if position:
                        stats.served_as_fallback += weight
                        self.usage(f"{kind}/{chain[0]}").fell_back += weight
                    return result
            stats.failures += weight
            stats.last_error = message
            self.breaker(key).record_failure(message)
            # After the breaker counted it, so what on_attempt reads of the breaker is current.
            self.on_attempt(key, outcome, (self.clock() - start) * 1000, weight, position > 0)
            tried.append(Attempt(name, message, self.clock() - start))
        raise _failure(kind, tried, self.retry_after_s)

    async def _wait(self, task: asyncio.Future[T], kind: str, name: str,
                    timeout: float) -> tuple[bool, str | None]:
        """Wait for ``task`` up to ``timeout``: (done, why nothing is alive behind it or None).

        Half-way to the deadline a late call asks ``liveness``; a provider with no live
        replica is given up then, and one that has a replica keeps the rest of its time."""
        if self.liveness is None:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            return bool(done), None
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        done, _ = await asyncio.wait({task}, timeout=timeout * self.probe_at)
        if done:
            return True, None
        probe = asyncio.ensure_future(self.liveness(kind, name))
        try:
            done, _ = await asyncio.wait({task, probe}, timeout=max(0.0, end - loop.time()),
                                         return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return True, None
            if probe in done:
                dead = None if probe.exception() is not None else probe.result()
                if dead is not None:
                    return False, dead
                done, _ = await asyncio.wait({task}, timeout=max(0.0, end - loop.time()))
            return bool(done), None
        finally:
            if not probe.done():
                probe.cancel()



def is_overload(exc: BaseException) -> bool:
    """Serve's BackPressureError (a full ``max_queued_requests``), bare or wrapped, or ours."""
    return isinstance(exc, ProviderOverloadedError) or is_backpressure(exc)


def describe_error(exc: BaseException) -> str:
    """One line naming an error: its type and the last line of its message."""
    # Ray wraps a replica's exception (RayTaskError) and keeps the original as
    # .cause; show the original, not Ray's multi-line traceback text.
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")[:500]


def _failure(kind: str, tried: list[Attempt], retry_after_s: float = 1.0) -> ProviderCallError | ProviderOverloadedError:
    """The error a call that found no provider to answer raises: overloaded (503), known down
    (503), every one past its deadline (504), or failed (502); each names who and why."""
    detail = "; ".join(f"{a.name}: {a.error}" for a in tried)
    if any(a.overloaded for a in tried) and all(a.overloaded or a.skipped for a in tried):
        # Nothing failed, something was only busy: 503 + Retry-After, naming who was busy.
        busy = [a.name for a in tried if a.overloaded]
        if len(tried) == 1:
            return ProviderOverloadedError(f"{kind} provider {busy[0]!r} is overloaded: {tried[0].error}; "
                                           "retry later", retry_after_s)
        return ProviderOverloadedError(f"{kind} providers {busy} are overloaded (chain "
                                       f"{[a.name for a in tried]}): {detail}; retry later", retry_after_s)
    if tried and all(a.skipped or a.unavailable for a in tried):
        # Every provider is known down (breaker open, or no live replica): 503, with when to come back.
        retry = max(retry_after_s, min(a.retry_in_s or 0.0 for a in tried))
        if len(tried) == 1:
            return ProviderUnavailableError(f"{kind} provider {tried[0].name!r} is unavailable: "
                                            f"{tried[0].error}; retry in {retry:.0f}s", retry)
        return ProviderUnavailableError(f"all {kind} providers in the chain {[a.name for a in tried]} are "
                                        f"unavailable: {detail}; retry in {retry:.0f}s", retry)
    only_timeouts = tried and all((a.error or "").startswith("missed its") for a in tried)
    cls = ProviderTimeoutError if only_timeouts else ProviderCallError
    names = [a.name for a in tried]
    if len(tried) == 1:
        return cls(f"{kind} provider {names[0]!r} failed: {tried[0].error}")
    return cls(f"all {kind} providers in the chain {names} failed: {detail}")


__all__ = ["Attempt", "CALLER_ERRORS", "FallbackCaller", "describe_error", "is_overload"]
