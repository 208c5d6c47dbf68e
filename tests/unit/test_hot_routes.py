"""`deployments.hot_routes`: the busiest fixed-path POSTs answered before FastAPI's
routing, exactly as FastAPI's route answers them, and still behind the peer guard."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import orjson
import pytest
from starlette.responses import PlainTextResponse

from deployments.hot_routes import HotRoutes, route_path
from deployments.http_app import build_http_app

HOT = {"/v1/embeddings", "/v1/embed", "/v2/embed", "/v1/rerank", "/v2/rerank"}


def _app(without_hot_routes: bool = False):
    core = SimpleNamespace(settings=SimpleNamespace(max_request_bytes=1 << 16, http_host="127.0.0.1"))
    app = build_http_app(core, observability=None, lifecycle=None, rollout=None, vectors=None)
    if without_hot_routes:  # every request through FastAPI's routing, as before hot routes
        app.user_middleware = [m for m in app.user_middleware if m.cls is not HotRoutes]
    return app


def _hot_table(app) -> dict:
    (middleware,) = [m for m in app.user_middleware if m.cls is HotRoutes]
    return middleware.kwargs["routes"]


def test_the_hot_routes_are_the_busy_fixed_posts_and_fastapi_still_lists_them():
    app = _app()
    assert set(_hot_table(app)) == {("POST", path) for path in HOT}
    paths = app.openapi()["paths"]
    assert all("post" in paths[path] for path in HOT)


# Requests refused before any provider is called: the core here has no router behind it.
BAD_BODIES = [
    ("not json", b"{model: x", {"content-type": "application/json"}),
    ("empty", b"", {"content-type": "application/json"}),
    ("an array", b"[1, 2]", {"content-type": "application/json"}),
    ("no model", orjson.dumps({"input": "hi", "query": "q", "documents": ["a"], "texts": ["a"]}), {}),
    ("wrong types", orjson.dumps({"model": 5, "input": [1, "a"], "texts": 3, "query": 4, "documents": 1}), {}),
    ("too large", orjson.dumps({"model": "m", "input": "x" * 70_000}), {"content-type": "application/json"}),
]


@pytest.mark.parametrize("path", sorted(HOT))
@pytest.mark.parametrize(("label", "body", "headers"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_a_hot_route_answers_exactly_as_fastapis_route(path, label, body, headers):
    answers = []
    for app in (_app(), _app(without_hot_routes=True)):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
            r = await client.post(path, content=body, headers=headers)
        answers.append((r.status_code, r.headers["content-type"], r.json()))
    hot, plain = answers
    assert hot == plain
    assert 400 <= hot[0] < 500 and hot[2]["error"]["message"], hot  # a 4xx in the registry's shape


async def test_a_hot_route_is_still_behind_the_peer_guard():
    transport = httpx.ASGITransport(app=_app(), client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        r = await client.post("/v1/embeddings", json={"model": "m", "input": "hi"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_local"


class _Inner:
    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.paths.append(scope["path"])
        await PlainTextResponse("fastapi")(scope, receive, send)


async def _hot(request):
    return PlainTextResponse("hot")


@pytest.mark.parametrize(("method", "path", "root_path", "answered_by"), [
    ("POST", "/v1/embeddings", "", "hot"),
    ("GET", "/v1/embeddings", "", "fastapi"),      # another method: FastAPI's 405 with Allow
    ("POST", "/v1/embeddings/", "", "fastapi"),    # a trailing slash: FastAPI's redirect
    ("POST", "/v1/embeddings/x", "", "fastapi"),
    ("POST", "/reg/v1/embeddings", "/reg", "hot"),  # under Serve's route prefix
    ("POST", "/regv1/embeddings", "/reg", "fastapi"),
])
async def test_only_the_exact_method_and_path_is_answered_here(method, path, root_path, answered_by):
    inner = _Inner()
    app = HotRoutes(inner, {("POST", "/v1/embeddings"): _hot})
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "root_path": root_path, "headers": [],
             "query_string": b""}
    await app(scope, receive, send)
    assert sent[-1]["body"].decode() == answered_by
    assert inner.paths == ([] if answered_by == "hot" else [path])


def test_route_path_strips_only_a_whole_root_path_segment():
    assert route_path({"path": "/reg/v1/x", "root_path": "/reg"}) == "/v1/x"
    assert route_path({"path": "/regv1/x", "root_path": "/reg"}) == "/regv1/x"
    assert route_path({"path": "/v1/x", "root_path": ""}) == "/v1/x"
