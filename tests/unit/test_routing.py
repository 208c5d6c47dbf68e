"""The routing core (providers/registry/routing.py).

`FallbackCaller` is plain asyncio and takes the call to one provider as a
function, so these tests hand it small async fakes: that function *is* the
seam, and a real provider cannot be made to fail or hang on demand here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from providers.errors import (
    InvalidRequestError,
    ProviderCallError,
    ProviderNotFoundError,
    ProviderTimeoutError,
    RegistryError,
)
from providers.registry.redaction import scrub_text
from providers.registry.routing import FallbackCaller

KIND = "embeddings"


class Script:
    """Per-provider behaviour: a value to return, an exception to raise, or a hang."""

    HANG = object()

    def __init__(self, **behaviour: Any) -> None:
        self.behaviour = behaviour
        self.calls: list[tuple[str, float]] = []
        self.cancelled: list[str] = []

    async def __call__(self, name: str, timeout_s: float) -> Any:
        self.calls.append((name, timeout_s))
        outcome = self.behaviour[name]
        if outcome is Script.HANG:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled.append(name)
                raise
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @property
    def tried(self) -> list[str]:
        return [name for name, _ in self.calls]


def timeouts(default: float = 5.0, **per_name: float) -> Callable[[str], float]:
    return lambda name: per_name.get(name, default)


async def call(caller: FallbackCaller, chain: list[str], script: Script,
               timeout_of: Callable[[str], float] | None = None) -> Any:
    return await caller.call(KIND, chain, script, timeout_of or timeouts())


async def test_success_on_primary() -> None:
    caller = FallbackCaller()
    script = Script(a="from-a", b="from-b")
    assert await call(caller, ["a", "b"], script) == "from-a"
    assert script.tried == ["a"]
    stats = caller.usage("embeddings/a").as_dict()
    assert (stats["calls"], stats["successes"], stats["failures"], stats["served_as_fallback"]) == (1, 1, 0, 0)
    assert stats["latency_ms"]["p50"] is not None and stats["last_used"] is not None
    assert "embeddings/b" not in caller.stats


async def test_attempt_gets_its_own_deadline() -> None:
    script = Script(a=RuntimeError("down"), b="ok")
    await call(FallbackCaller(), ["a", "b"], script, timeouts(a=0.5, b=2.5))
    assert script.calls == [("a", 0.5), ("b", 2.5)]


async def test_primary_raises_fallback_serves() -> None:
    caller = FallbackCaller()
    script = Script(a=RuntimeError("model exploded"), b="from-b")
    assert await call(caller, ["a", "b"], script) == "from-b"
    assert script.tried == ["a", "b"]
    a, b = caller.usage("embeddings/a"), caller.usage("embeddings/b")
    assert (a.calls, a.failures, a.successes) == (1, 1, 0)
    assert a.last_error == "RuntimeError: model exploded"
    assert (b.calls, b.successes, b.served_as_fallback) == (1, 1, 1)


async def test_stats_accumulate_over_calls() -> None:
    caller = FallbackCaller()
    for _ in range(3):
        await call(caller, ["a", "b"], Script(a=RuntimeError("x"), b="ok"))
    await call(caller, ["b"], Script(b="ok"))
    b = caller.usage("embeddings/b")
    assert (b.calls, b.successes, b.served_as_fallback) == (4, 4, 3)
    assert caller.usage("embeddings/a").failures == 3


async def test_primary_hangs_fallback_serves_within_deadline() -> None:
    caller = FallbackCaller()
    script = Script(a=Script.HANG, b="from-b")
    start = time.monotonic()
    result = await call(caller, ["a", "b"], script, timeouts(0.2))
    elapsed = time.monotonic() - start
    assert result == "from-b"
    # cut at its deadline, not after the hour-long hang; the message names the 0.2 s
    # deadline, so the bound need not be tight (a busy machine stalls the loop)
    assert 0.19 <= elapsed < 60
    assert script.cancelled == ["a"]  # the hung call is cancelled, not left running
    a = caller.usage("embeddings/a")
    assert (a.timeouts, a.failures) == (1, 1)
    assert "0.2s deadline" in a.last_error
    assert caller.usage("embeddings/b").served_as_fallback == 1


async def test_all_fail_names_every_provider() -> None:
    script = Script(a=RuntimeError("a broke"), b=ValueError("b broke"), c=KeyError("c"))
    with pytest.raises(ProviderCallError) as info:
        await call(FallbackCaller(), ["a", "b", "c"], script)
    err = info.value
    assert not isinstance(err, ProviderTimeoutError)
    text = str(err)
    assert "['a', 'b', 'c']" in text
    for part in ("a: RuntimeError: a broke", "b: ValueError: b broke", "c: KeyError"):
        assert part in text
    assert script.tried == ["a", "b", "c"]


async def test_single_provider_failure_message() -> None:
    with pytest.raises(ProviderCallError, match=r"embeddings provider 'a' failed: RuntimeError: down"):
        await call(FallbackCaller(), ["a"], Script(a=RuntimeError("down")))


async def test_all_time_out() -> None:
    caller = FallbackCaller()
    script = Script(a=Script.HANG, b=Script.HANG)
    start = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as info:
        await call(caller, ["a", "b"], script, timeouts(0.2))
    assert time.monotonic() - start < 60  # not the hour-long hangs; the messages name the 0.2 s deadlines
    assert "a: missed its 0.2s deadline" in str(info.value)
    assert "b: missed its 0.2s deadline" in str(info.value)
    assert isinstance(info.value, ProviderCallError)  # callers catching the parent still catch it


async def test_timeout_then_error_is_a_call_error_not_a_timeout() -> None:
    with pytest.raises(ProviderCallError) as info:
        await call(FallbackCaller(), ["a", "b"], Script(a=Script.HANG, b=RuntimeError("down")), timeouts(0.2))
    assert not isinstance(info.value, ProviderTimeoutError)


@pytest.mark.parametrize(
    "error",
    [InvalidRequestError("must not be empty", "texts"), ProviderNotFoundError("no embeddings provider named 'x'")],
    ids=lambda e: type(e).__name__,
)
async def test_caller_errors_raise_at_once(error: RegistryError) -> None:
    caller = FallbackCaller()
    script = Script(a=error, b="from-b")
    with pytest.raises(type(error)) as info:
        await call(caller, ["a", "b"], script)
    assert info.value is error
    assert script.tried == ["a"]
    assert caller.usage("embeddings/a").failures == 1


async def test_scrub_applies_to_recorded_and_raised_text() -> None:
    secret = "sk-live-0123456789"
    caller = FallbackCaller(scrub=lambda text: scrub_text(text, {secret}))
    script = Script(a=RuntimeError(f"401 for key {secret}"), b=RuntimeError(f"connect postgresql://u:{secret}@h/db"))
    with pytest.raises(ProviderCallError) as info:
        await call(caller, ["a", "b"], script)
    assert secret not in str(info.value)
    assert "401 for key ***" in str(info.value)
    assert "postgresql://u:***@h/db" in str(info.value)
    for key in ("embeddings/a", "embeddings/b"):
        assert secret not in caller.usage(key).last_error


async def test_exception_with_cause_is_described_by_its_cause() -> None:
    class WrappedTaskError(Exception):
        """Shaped like Ray's RayTaskError: multi-line traceback text, the original as .cause."""

        def __init__(self, cause: BaseException) -> None:
            super().__init__("ray::ServeReplica.handle_request()\nTraceback (most recent call last):\n  ...")
            self.cause = cause

    caller = FallbackCaller()
    with pytest.raises(ProviderCallError) as info:
        await call(caller, ["a"], Script(a=WrappedTaskError(ValueError("bad input row 7"))))
    assert "ValueError: bad input row 7" in str(info.value)
    assert "Traceback" not in str(info.value) and "WrappedTaskError" not in str(info.value)
    assert caller.usage("embeddings/a").last_error == "ValueError: bad input row 7"


async def test_multiline_message_keeps_its_last_line() -> None:
    with pytest.raises(ProviderCallError) as info:
        await call(FallbackCaller(), ["a"], Script(a=RuntimeError("context line\nthe real reason")))
    assert str(info.value).endswith("RuntimeError: the real reason")


async def test_circuit_hook_skips_provider() -> None:
    class OpenCircuit(FallbackCaller):
        def should_try(self, key: str) -> bool:
            return key != "embeddings/a"

    caller = OpenCircuit()
    script = Script(a="never", b="from-b")
    assert await call(caller, ["a", "b"], script) == "from-b"
    assert script.tried == ["b"]
    skipped = caller.stats["embeddings/a"]
    assert skipped.calls == 0 and skipped.fell_back == 1  # never called; its call was served by b


async def test_cancellation_of_the_caller_propagates() -> None:
    caller = FallbackCaller()
    script = Script(a=Script.HANG, b="from-b")
    task = asyncio.create_task(call(caller, ["a", "b"], script, timeouts(30)))
    while not script.calls:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert script.tried == ["a"]  # no fallback tried for a caller who went away


async def test_provider_raised_timeout_error_keeps_its_message() -> None:
    caller = FallbackCaller()
    with pytest.raises(ProviderCallError) as info:
        await call(caller, ["a"], Script(a=TimeoutError("upstream read timed out")), timeouts(5))
    assert "upstream read timed out" in str(info.value)
    assert caller.usage("embeddings/a").timeouts == 0


async def test_an_open_breaker_skips_the_primary_without_calling_it():
    """After the threshold, calls go straight to the fallback: the primary is not called again."""
    from providers.registry.breaker import BreakerOptions

    calls = {"bad": 0, "good": 0}

    async def attempt(name, timeout):
        calls[name] += 1
        if name == "bad":
            raise RuntimeError("down")
        return name

    caller = FallbackCaller(breaker_options=lambda key: BreakerOptions(failure_threshold=3, open_s=60))
    for _ in range(10):
        assert await caller.call("embeddings", ["bad", "good"], attempt, lambda n: 1.0) == "good"
    assert calls == {"bad": 3, "good": 10}
    assert caller.breaker("embeddings/bad").snapshot()["state"] == "open"
    with pytest.raises(ProviderCallError, match="circuit open"):
        await caller.call("embeddings", ["bad"], attempt, lambda n: 1.0)
    assert calls["bad"] == 3


async def test_a_chain_known_down_answers_unavailable_at_once_with_when_to_come_back():
    """Every provider of the chain skipped (breakers open: a lost node, a crashed replica):
    nothing is called, and the error is a 503 naming them, with the seconds until a
    trial call may go through; a chain where one was called and failed stays a 502."""
    from providers.errors import ProviderUnavailableError
    from providers.registry.breaker import BreakerOptions

    now = [100.0]
    caller = FallbackCaller(clock=lambda: now[0],
                            breaker_options=lambda key: BreakerOptions(failure_threshold=1, open_s=30))

    async def attempt(name, timeout):
        raise RuntimeError(f"{name} down")

    with pytest.raises(ProviderCallError) as first:
        await caller.call("embeddings", ["lonely"], attempt, lambda n: 1.0)
    assert not isinstance(first.value, ProviderUnavailableError) and first.value.http_status == 502
    now[0] += 10
    with pytest.raises(ProviderUnavailableError) as known:
        await caller.call("embeddings", ["lonely"], attempt, lambda n: 1.0)
    assert known.value.http_status == 503 and "'lonely'" in str(known.value) and "lonely down" in str(known.value)
    assert known.value.retry_after_s == pytest.approx(20)
    with pytest.raises(ProviderCallError) as mixed:  # the fallback was called and failed: a failure
        await caller.call("embeddings", ["lonely", "other"], attempt, lambda n: 1.0)
    assert not isinstance(mixed.value, ProviderUnavailableError)
    with pytest.raises(ProviderUnavailableError, match=r"chain \['lonely', 'other'\]"):
        await caller.call("embeddings", ["lonely", "other"], attempt, lambda n: 1.0)
    now[0] += 21  # half-open: the trial call goes through again
    with pytest.raises(ProviderCallError) as trial:
        await caller.call("embeddings", ["lonely"], attempt, lambda n: 1.0)
    assert not isinstance(trial.value, ProviderUnavailableError)


async def test_caller_errors_do_not_open_the_breaker():
    from providers.errors import InvalidRequestError
    from providers.registry.breaker import BreakerOptions

    async def attempt(name, timeout):
        raise InvalidRequestError("bad input", "texts")

    caller = FallbackCaller(breaker_options=lambda key: BreakerOptions(failure_threshold=1))
    for _ in range(3):
        with pytest.raises(InvalidRequestError):
            await caller.call("embeddings", ["p"], attempt, lambda n: 1.0)
    assert caller.breaker("embeddings/p").snapshot()["state"] == "closed"


async def test_every_attempt_is_reported_with_its_outcome():
    seen = []
    caller = FallbackCaller(on_attempt=lambda key, outcome, ms, weight, fb: seen.append((key, outcome, weight, fb)))
    script = Script(a=RuntimeError("down"), b=Script.HANG, c="from-c")
    result = await call(caller, ["a", "b", "c"], script, timeouts(0.2))
    assert result == "from-c"
    assert seen == [("embeddings/a", "failure", 1, False), ("embeddings/b", "timeout", 1, True),
                    ("embeddings/c", "success", 1, True)]


async def test_a_late_call_with_no_live_replica_is_given_up_before_its_deadline():
    """Half-way (here 1%) to a 30 s deadline the caller asks whether anything is alive behind
    the provider; 'nothing' ends the call at once as unavailable (503), counted as a failure
    by its breaker, and the fallback serves the chain; 'something' keeps the call to its
    deadline (504)."""
    from providers.errors import ProviderTimeoutError, ProviderUnavailableError
    from providers.registry.breaker import BreakerOptions

    never = asyncio.Event()
    verdicts = {"lonely": "none of its 1 replica(s) is reachable (10.0.0.9:4242 connection refused)",
                "slow": None}
    asked = []

    async def liveness(kind, name):
        asked.append((kind, name))
        return verdicts.get(name)

    async def attempt(name, timeout):
        if name == "good":
            return "good"
        await never.wait()

    caller = FallbackCaller(liveness=liveness, probe_at=0.01,
                            breaker_options=lambda key: BreakerOptions(failure_threshold=2, open_s=30))
    with pytest.raises(ProviderUnavailableError) as gone:
        await caller.call("embeddings", ["lonely"], attempt, lambda n: 30.0)
    assert "'lonely' is unavailable: no live replica: none of its 1 replica(s)" in str(gone.value)
    assert gone.value.http_status == 503 and gone.value.retry_after_s >= 1
    assert caller.breaker("embeddings/lonely").snapshot()["state"] == "closed"
    assert caller.usage("embeddings/lonely").failures == 1 and asked == [("embeddings", "lonely")]
    with pytest.raises(ProviderUnavailableError):
        await caller.call("embeddings", ["lonely"], attempt, lambda n: 30.0)
    assert caller.breaker("embeddings/lonely").snapshot()["state"] == "open"  # then at once, with Retry-After
    with pytest.raises(ProviderUnavailableError, match="circuit open") as known:
        await caller.call("embeddings", ["lonely"], attempt, lambda n: 30.0)
    assert known.value.retry_after_s > 20 and len(asked) == 2

    caller = FallbackCaller(liveness=liveness, probe_at=0.01)
    assert await caller.call("embeddings", ["lonely", "good"], attempt, lambda n: 30.0) == "good"
    assert caller.usage("embeddings/good").served_as_fallback == 1

    with pytest.raises(ProviderTimeoutError):  # alive, only slow: the deadline decides
        await FallbackCaller(liveness=liveness, probe_at=0.5).call("embeddings", ["slow"], attempt, lambda n: 0.2)


async def test_a_failing_liveness_check_leaves_the_deadline_in_charge():
    from providers.errors import ProviderTimeoutError

    async def liveness(kind, name):
        raise RuntimeError("GCS unreachable")

    async def attempt(name, timeout):
        await asyncio.Event().wait()

    with pytest.raises(ProviderTimeoutError):
        await FallbackCaller(liveness=liveness, probe_at=0.5).call("embeddings", ["p"], attempt, lambda n: 0.2)
