"""Graph engines against real databases: Ladybug always (a file per test, in
tmp_path), Memgraph only where ``MEMGRAPH_URL`` (bolt://host:port) names a
server. No Ray here: the tests drive the provider classes directly.

A Memgraph test starts by deleting everything on that server: point
MEMGRAPH_URL at a scratch instance only.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlparse

import pytest

MEMGRAPH_SKIP = "MEMGRAPH_URL not set: no Memgraph server here"
ENGINES = [
    "ladybug",
    pytest.param("memgraph", marks=pytest.mark.skipif(not os.environ.get("MEMGRAPH_URL"), reason=MEMGRAPH_SKIP)),
]


def memgraph_config() -> dict[str, Any]:
    url = urlparse(os.environ["MEMGRAPH_URL"])
    cfg: dict[str, Any] = {"host": url.hostname or "localhost", "port": url.port or 7687,
                           "encrypted": url.scheme in ("bolt+s", "bolt+ssc")}
    if url.username:
        cfg["username"] = url.username
    if url.password:
        cfg["password"] = url.password
    return cfg


@pytest.fixture
async def make_engine(tmp_path: Any) -> AsyncIterator[Callable[..., Any]]:
    """``await make_engine(kind, **config)``: an initialized engine on an empty graph."""
    opened: list[Any] = []

    async def make(kind: str, **config: Any) -> Any:
        if kind == "ladybug":
            from providers.graph.ladybug import LadybugGraphEngine

            engine = LadybugGraphEngine()
            await engine.initialize({"path": str(tmp_path / f"g{len(opened)}" / "graph.db"), **config})
        else:
            from providers.graph.memgraph import MemgraphGraphEngine

            engine = MemgraphGraphEngine()
            await engine.initialize({**memgraph_config(), **config})
            await engine.execute_cypher("MATCH (n) DETACH DELETE n")
        opened.append(engine)
        return engine

    yield make
    for engine in opened:
        await engine.close()


@pytest.fixture(params=ENGINES)
async def engine(request: pytest.FixtureRequest, make_engine: Callable[..., Any]) -> Any:
    return await make_engine(request.param)
