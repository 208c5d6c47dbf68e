"""The admin guard (deployments/admin_api.py), without Ray: statuses, constant-time
comparison on every path that carries credentials, no token in any answer or
log line, and every ``/v1/admin`` route behind it.

tests/integration/test_admin.py and test_security.py check the same over real HTTP.
"""

from __future__ import annotations

import hmac
import inspect
import logging
from typing import Any

import orjson
import pytest
from starlette.requests import Request

from deployments import admin_api

ENV = "UNIT_ADMIN_TOKEN"
TOKEN = "unit-" + "9d8c7b6a5f4e3d2c1b0a"


def request(authorization: str | None = None, body: bytes = b"{}", path: str = "/v1/admin/x") -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode("latin-1"))]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b""}
    return Request(scope, receive)


def status_and_body(response: Any) -> tuple[int | None, str]:
    return (None, "") if response is None else (response.status_code, response.body.decode())


@pytest.fixture
def digest_calls(monkeypatch) -> list[tuple[int, int]]:
    """Every hmac.compare_digest call as (len(a), len(b))."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(admin_api.hmac, "compare_digest", spy)
    return calls


CREDENTIALED = [  # (Authorization header, expected status: None = allowed)
    (f"Bearer {TOKEN}", None),
    (f"bearer {TOKEN}", None),  # the scheme is case-insensitive (RFC 7235)
    (f"Bearer  {TOKEN} ", None),  # surrounding spaces are not part of the token
    ("Bearer wrong", 401),
    (f"Bearer {TOKEN}x", 401),
    (f"Bearer {TOKEN[:-1]}", 401),
    (f"Bearer {TOKEN[:4]}", 401),  # a prefix of the token
    (TOKEN, 401),  # no scheme
    (f"Basic {TOKEN}", 401),  # another scheme, with the right token
    ("Bearer", 401),
    ("Bearer ünïcode", 401),
]


@pytest.mark.parametrize(("header", "status"), CREDENTIALED)
def test_credentials_are_compared_in_constant_time(monkeypatch, digest_calls, header, status):
    """Every request carrying credentials costs exactly one compare_digest over equal-length
    digests, whatever the scheme: neither the outcome nor the token's length shows in the timing."""
    monkeypatch.setenv(ENV, TOKEN)
    got, body = status_and_body(admin_api.admin_denied(request(header), ENV))
    assert got == status
    assert digest_calls == [(32, 32)]
    assert TOKEN not in body


@pytest.mark.parametrize(("forced", "header", "allowed"), [
    (False, f"Bearer {TOKEN}", False),  # the right token is refused when compare_digest says no ...
    (True, "Bearer wrong", True),  # ... and a wrong one admitted when it says yes:
])
def test_compare_digest_is_the_only_comparison(monkeypatch, forced, header, allowed):
    """No other comparison (an ``==`` shortcut) decides: compare_digest's answer is the answer."""
    monkeypatch.setenv(ENV, TOKEN)
    monkeypatch.setattr(admin_api.hmac, "compare_digest", lambda a, b: forced)
    assert (admin_api.admin_denied(request(header), ENV) is None) is allowed


@pytest.mark.parametrize(("configured", "header", "status", "code"), [
    ("", f"Bearer {TOKEN}", 403, "admin_disabled"),  # no token configured: nothing opens it
    (TOKEN, None, 403, "forbidden"),  # no credentials: 403
    (TOKEN, "   ", 403, "forbidden"),
])
def test_without_credentials_or_configuration_it_is_403(monkeypatch, digest_calls, configured, header, status, code):
    monkeypatch.setenv(ENV, configured)
    got, body = status_and_body(admin_api.admin_denied(request(header), ENV))
    assert got == status and orjson.loads(body)["error"]["code"] == code
    assert digest_calls == []  # nothing to compare
    assert TOKEN not in body


def test_no_token_in_any_log_line(monkeypatch, caplog):
    monkeypatch.setenv(ENV, TOKEN)
    with caplog.at_level(logging.DEBUG):
        for header, _ in CREDENTIALED:
            admin_api.admin_denied(request(header), ENV)
    assert TOKEN not in caplog.text and TOKEN[:12] not in caplog.text


class _Probe:
    """Stands in for every part of the router: records any method an admin handler reaches."""

    def __init__(self) -> None:
        self.settings = type("S", (), {"admin_token_env": ENV, "max_request_bytes": 1 << 20, "http_host": "127.0.0.1"})()
        self.reached: list[str] = []

    def __getattr__(self, name: str) -> Any:
        async def method(*args: Any, **kwargs: Any) -> dict[str, Any]:
            self.reached.append(name)
            return {"ok": True}

        return method


def admin_app(probe: _Probe) -> Any:
    """The router's own HTTP app, built over the probe as core and every part."""
    from deployments.http_app import build_http_app

    return build_http_app(probe, observability=probe, lifecycle=probe, rollout=probe, vectors=probe, applier=probe)


def _admin_routes(probe: _Probe) -> list[Any]:
    return [r for r in admin_app(probe).routes if getattr(r, "path", "").startswith("/v1/admin")]


ADMIN_ROUTES = _admin_routes(_Probe())


def test_admin_routes_are_found():
    paths = {(sorted(r.methods)[0], r.path) for r in ADMIN_ROUTES}
    assert ("POST", "/v1/admin/providers/{ptype}/{name}") in paths and ("GET", "/v1/admin/export") in paths
    assert len(paths) >= 10


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=lambda r: f"{sorted(r.methods)[0]} {r.path}")
async def test_every_admin_route_is_behind_the_guard(monkeypatch, route):
    """No token: 403; wrong token: 401; and the registry is never reached. With the
    token the same handler does reach it (the probe can see a call)."""
    monkeypatch.setenv(ENV, TOKEN)
    params = {n: "x" for n in inspect.signature(route.endpoint).parameters if n != "request"}
    valid = {"fallback": {"fallback": []}, "monitoring": {"enabled": True}, "reembed": {}, "swap": {}, "apply": {}}
    body = orjson.dumps(valid.get(route.path.rsplit("/", 1)[-1], {"class": "providers.x.Y"}))
    for header, status in ((None, 403), ("Bearer wrong", 401), (f"Basic {TOKEN}", 401)):
        probe = _Probe()
        response = await _endpoint(probe, route)(request(header, body), **params)
        assert response.status_code == status and probe.reached == [], (header, probe.reached)
        assert TOKEN not in response.body.decode()
    probe = _Probe()
    response = await _endpoint(probe, route)(request(f"Bearer {TOKEN}", body), **params)
    assert response.status_code not in (401, 403)
    assert probe.reached, "the authorized call reached nothing: the probe cannot tell"


def _endpoint(probe: _Probe, route: Any) -> Any:
    """``route``'s handler in an app built over ``probe`` (handlers are bound to their parts)."""
    return next(r.endpoint for r in _admin_routes(probe) if r.path == route.path and r.methods == route.methods)
