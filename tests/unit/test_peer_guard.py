"""deployments/peer_guard.py: a loopback-only registry refuses peers that are not this machine.

A real ASGI app behind the middleware, called through httpx's ASGI transport
with the peer address a network connection would carry.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from deployments.peer_guard import LocalPeersOnly, is_loopback, local_addresses


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/providers")
    async def providers():
        return {"providers": []}

    app.add_middleware(LocalPeersOnly)
    return app


async def _get(peer: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        return await client.get("/v1/providers")


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "testclient"])
async def test_this_machine_is_served(peer):
    r = await _get(peer)
    assert r.status_code == 200, r.text


async def test_the_machines_own_interface_addresses_are_served():
    """HAProxy on this node connects to the router's direct-ingress port from the node's address."""
    outside_loopback = [a for a in local_addresses() if not is_loopback(a)]
    if not outside_loopback:
        pytest.skip("this machine has no interface address besides loopback")
    assert (await _get(outside_loopback[0])).status_code == 200


@pytest.mark.parametrize("peer", ["203.0.113.7", "2001:db8::7", "::ffff:203.0.113.7"])
async def test_a_peer_elsewhere_is_refused_with_a_reason(peer):
    r = await _get(peer)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "not_local" and "registry.http_host" in r.json()["error"]["message"]


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                 ("0.0.0.0", False), ("10.0.0.5", False), ("registry.example", False)])
def test_which_bind_addresses_are_loopback(host, loopback):
    assert is_loopback(host) is loopback
