"""Keep a loopback-only registry loopback-only when HAProxy is its ingress.

With ``registry.http_host: 127.0.0.1`` (the default) the operator promised
that only this machine reaches the API. Serve's Python proxy keeps that
promise by binding there. With HAProxy (serve_app/ingress.py) HAProxy binds
there too, but it forwards to the router replica's own HTTP port ("direct
ingress"), which Ray 2.60 binds on every interface so that HAProxy on other
nodes can reach it (ray/serve/_private/constants.py: "RAY_SERVE_ENABLE_HA_PROXY=1
forces host to all interfaces"): ports 30000-31000, the whole API, reachable
from the network.

This ASGI middleware refuses (403, before any route runs) a request whose
peer is not an address of this machine, when ``http_host`` is a loopback
address. HAProxy on this node connects from one of the node's own
addresses, so it passes. A registry that binds wider chose to be reachable;
the guard is off there.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_addresses() -> frozenset[str]:
    """Every address of this machine's interfaces (IPv4 and IPv6), loopback included."""
    import socket

    import psutil

    found = {"127.0.0.1", "::1"}
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                found.add(a.address.split("%", 1)[0])  # fe80::1%eth0 -> fe80::1
    return frozenset(found)


_REFUSAL = orjson.dumps({"error": {
    "message": "this registry listens on a loopback address (registry.http_host): only this machine may call it",
    "type": "forbidden", "param": None, "code": "not_local"}})


class LocalPeersOnly:
    """ASGI middleware: 403 for HTTP requests from a peer that is not this machine."""

    def __init__(self, app: Any, allowed: frozenset[str] | None = None) -> None:
        self.app = app
        self.allowed = allowed if allowed is not None else local_addresses()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            peer = client[0] if client else None
            if _from_elsewhere(peer, self.allowed):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(_REFUSAL)).encode())]})
                await send({"type": "http.response.body", "body": _REFUSAL})
                return
        await self.app(scope, receive, send)


def _from_elsewhere(peer: str | None, allowed: frozenset[str]) -> bool:
    """A peer address that is not this machine's. No peer, or one that is not an IP
    address (a Unix socket, Starlette's in-process ``testclient``), came from no network."""
    if peer is None or peer in allowed:
        return False
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:10.0.0.5 on a dual-stack socket
    return not (mapped is not None and str(mapped) in allowed)
