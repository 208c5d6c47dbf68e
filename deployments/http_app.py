"""The router's HTTP app, built from its parts (no FastAPI app exists at import time)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from deployments.admin_api import AdminRoutes
from deployments.graph_api import GraphRoutes
from deployments.hot_routes import HotRoutes
from deployments.http_api import BodyReader, CoreRoutes, mount, new_app
from deployments.mcp_server import mount_mcp
from deployments.peer_guard import LocalPeersOnly, is_loopback
from deployments.tools_api import ToolRoutes
from deployments.ui_api import UiRoutes
from deployments.vector_api import VectorStoreRoutes


def build_http_app(core: Any, *, observability: Any, lifecycle: Any, rollout: Any, vectors: Any,
                   applier: Any = None, events: Any = None) -> FastAPI:
    """Every route of the registry, each group holding the parts it calls."""
    body = BodyReader(core.settings.max_request_bytes)
    app = new_app()
    mount_mcp(app, core, observability)  # /mcp: the Model Context Protocol over the same call chain
    hot = mount(app,
                CoreRoutes(core, observability, body),
                VectorStoreRoutes(core, vectors, body),
                ToolRoutes(core, body),
                GraphRoutes(core, body),
                AdminRoutes(core, lifecycle, rollout, vectors, body, applier),
                UiRoutes(events))  # last: its `/` claims only what no other route does
    # Added first, so inside the peer guard (Starlette runs the last added outermost).
    app.add_middleware(HotRoutes, routes=hot)
    if is_loopback(core.settings.http_host):  # HAProxy's direct ingress binds the router everywhere
        app.add_middleware(LocalPeersOnly)
    return app
