"""The hottest routes, answered before FastAPI's routing (issue 18).

A one-text embeddings request over HTTP is mostly per-request work in the
router replica, not model work: with the fast CPU backends (OpenVINO bf16,
0.57 ms a text in batches) the router's ~0.5 ms of CPU per request decides
what the served path keeps of the model's offline rate. Of that, FastAPI's
routing, dependency solving and exception middleware were ~15%, for handlers
that need none of it: they read and check their own bodies
(`deployments.http_api.parse_body`) and answer every error themselves in the
registry's shape.

`HotRoutes` sits inside the peer guard (`deployments.peer_guard`) and
FastAPI's outer middleware, and calls a handler marked ``hot`` directly for its
exact method and path. FastAPI still has the route (the OpenAPI spec lists
it), and still answers everything else as before: another method (405 with
Allow), a trailing slash, an unknown path.

Measured (2026-12-06, this 2-core machine, `make serve`'s config, wrk -c64 one
text, router CPU by psutil): with the embedding cache answering, 0.46-0.49 ->
0.39-0.41 ms of router CPU per request, 2,040-2,160 -> 2,390-2,540 requests/s;
through the model (cache off), 0.63-0.65 -> 0.57-0.58 ms.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


class HotRoutes:
    """ASGI middleware: ``(method, path) -> handler(request)`` answered here; the rest goes on."""

    def __init__(self, app: Any, routes: dict[tuple[str, str], Handler]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            handler = self.routes.get((scope["method"], route_path(scope)))
            if handler is not None:
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def route_path(scope: dict[str, Any]) -> str:
    """The path as Starlette's router matches it: without the app's ``root_path``
    (Serve's route prefix), which Starlette keeps in ``scope["path"]``."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] == "/":
        return path[len(root):]
    return path
