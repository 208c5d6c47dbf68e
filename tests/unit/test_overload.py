"""Overload (issue 16): a provider whose Serve queue is full is busy, not broken.

Serve's own `BackPressureError` (what a DeploymentHandle call raises once the
provider's ``max_queued_requests`` is reached) goes through the real routing
core and the real HTTP error mapping.
"""

from __future__ import annotations

import orjson
import pytest
from ray.serve.exceptions import BackPressureError

from deployments.http_api import registry_error_response
from providers.errors import ProviderCallError, ProviderOverloadedError, is_backpressure
from providers.registry.breaker import BreakerOptions, BreakerState
from providers.registry.routing import FallbackCaller

KIND = "embeddings"


def full_queue() -> BackPressureError:
    return BackPressureError(num_queued_requests=1, max_queued_requests=1)


def scripted(**behaviour):
    tried: list[str] = []

    async def attempt(name: str, timeout_s: float):
        tried.append(name)
        outcome = behaviour[name]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return attempt, tried


async def test_overload_is_503_naming_the_provider_and_never_opens_the_breaker() -> None:
    caller = FallbackCaller(breaker_options=lambda key: BreakerOptions(failure_threshold=2, min_calls=2))
    for _ in range(10):  # far past failure_threshold
        attempt, _ = scripted(slow=full_queue())
        with pytest.raises(ProviderOverloadedError, match="'slow' is overloaded") as info:
            await caller.call(KIND, ["slow"], attempt, lambda n: 5.0)
        assert info.value.http_status == 503 and info.value.retry_after_s > 0
    assert caller.breaker(f"{KIND}/slow").state is BreakerState.CLOSED
    stats = caller.usage(f"{KIND}/slow")
    assert (stats.failures, stats.successes) == (0, 0) and "overloaded" in (stats.last_error or "")


async def test_a_fallback_serves_an_overloaded_primary() -> None:
    caller = FallbackCaller()
    attempt, tried = scripted(slow=full_queue(), backup="from-backup")
    assert await caller.call(KIND, ["slow", "backup"], attempt, lambda n: 5.0) == "from-backup"
    assert tried == ["slow", "backup"]
    assert caller.breaker(f"{KIND}/slow").state is BreakerState.CLOSED


async def test_overloaded_primary_and_failing_fallback_is_a_provider_failure() -> None:
    attempt, _ = scripted(slow=full_queue(), backup=RuntimeError("down"))
    with pytest.raises(ProviderCallError, match="overloaded.*down"):
        await FallbackCaller().call(KIND, ["slow", "backup"], attempt, lambda n: 5.0)


async def test_a_refused_half_open_trial_is_given_back() -> None:
    now = [0.0]
    caller = FallbackCaller(clock=lambda: now[0],
                            breaker_options=lambda key: BreakerOptions(failure_threshold=1, open_s=1.0))
    attempt, _ = scripted(slow=RuntimeError("down"))
    with pytest.raises(ProviderCallError):
        await caller.call(KIND, ["slow"], attempt, lambda n: 5.0)
    breaker = caller.breaker(f"{KIND}/slow")
    assert breaker.state is BreakerState.OPEN
    now[0] = 2.0  # past open_s: half-open, one trial
    attempt, _ = scripted(slow=full_queue())
    with pytest.raises(ProviderOverloadedError):
        await caller.call(KIND, ["slow"], attempt, lambda n: 5.0)
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allow()  # the trial is still there


def test_http_answer_is_503_with_retry_after_and_json_naming_the_provider() -> None:
    response = registry_error_response(ProviderOverloadedError("embeddings provider 'slow' is overloaded", 1.5),
                                       param="model")
    assert response.status_code == 503 and response.headers["retry-after"] == "2"
    error = orjson.loads(response.body)["error"]
    assert "'slow'" in error["message"] and error["code"] == "overloaded" and error["param"] == "model"


def test_serve_backpressure_outside_the_chain_is_503_not_internal() -> None:
    assert is_backpressure(full_queue()) and not is_backpressure(RuntimeError("x"))
    response = registry_error_response(full_queue(), param="model")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert orjson.loads(response.body)["error"]["code"] == "overloaded"


def test_the_router_deployment_gets_serve_queue_limits() -> None:
    from deployments.registry_app import build_registry_app

    config = {"registry": {"router": {"max_queued_requests": 7, "retry_after_s": 3}}}
    d = build_registry_app({"config": config})._bound_deployment._deployment_config
    assert d.max_queued_requests == 7
    assert (d.backpressure_config.status_code, d.backpressure_config.retry_after_s) == (503, 3)
