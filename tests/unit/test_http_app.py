"""The router's HTTP app as `build_http_app` makes it, without Ray: every route is
there, errors keep the registry's shape, and a 405 names what is allowed."""

from __future__ import annotations

import re
from types import SimpleNamespace

import httpx
import pytest

from deployments.http_app import build_http_app


def _app():
    core = SimpleNamespace(settings=SimpleNamespace(max_request_bytes=1 << 20, http_host="127.0.0.1"))
    return build_http_app(core, observability=None, lifecycle=None, rollout=None, vectors=None)


APP = _app()  # one build for the read-only checks below


def _paths() -> dict[str, set[str]]:
    """Concrete path (parameters filled) -> the methods its routes answer."""
    out: dict[str, set[str]] = {}
    for route in APP.routes:
        path = getattr(route, "path", "")
        if path.startswith(("/v1/", "/healthz")):
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            out.setdefault(concrete, set()).update(route.methods)
    return out


def test_every_group_mounted_its_routes():
    paths = _paths()
    for expected in ("/v1/embeddings", "/v1/providers", "/v1/vector_stores/x/search", "/v1/tools/x",
                     "/v1/rerank", "/v1/graph/x/cypher", "/v1/admin/providers/x/x/swap", "/healthz"):
        assert expected in paths
    assert len(paths) >= 30


def test_each_build_is_its_own_app():
    a, b = _app(), _app()
    assert a is not b and len(a.routes) == len(b.routes)


@pytest.mark.parametrize(("path", "methods"), sorted(_paths().items()))
async def test_a_405_carries_allow(path, methods):
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        response = await client.request("PATCH", path)
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == methods
    assert response.json()["error"]["message"] == "Method Not Allowed"


async def test_an_unknown_path_is_a_404_in_the_registry_shape():
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        response = await client.get("/v1/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["type"] == "invalid_request_error"
