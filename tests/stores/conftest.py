"""Vector stores against the real databases: the embedded PostgreSQL (pgvector)
and Qdrant's local mode. No Ray here: these tests drive the provider classes
directly; the registry paths are in tests/integration.

One embedded PostgreSQL serves the whole session (it starts in about a
second, but initdb of a fresh data directory costs more); every test gets
its own table or collection, so tests never see each other's documents.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from providers.vector_stores import embedded_postgres

STORES = ["pgvector", "qdrant"]
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_data_dir(tmp_path_factory: pytest.TempPathFactory):
    # A short path: PostgreSQL's Unix socket path must stay under 107 bytes.
    path = tmp_path_factory.mktemp("pg") / "data"
    embedded_postgres.ensure_running(path)
    yield str(path)
    embedded_postgres.stop(path)


def store_class(kind: str) -> type:
    if kind == "pgvector":
        from providers.vector_stores.pgvector import PgVectorStore

        return PgVectorStore
    from providers.vector_stores.qdrant import QdrantVectorStore

    return QdrantVectorStore


def base_config(kind: str, pg_data_dir: str, tmp_path: Any, name: str) -> dict[str, Any]:
    if kind == "pgvector":
        return {"data_dir": pg_data_dir, "table_name": name}
    # local mode locks its directory (one client at a time): one directory per collection
    return {"path": str(tmp_path / "qdrant" / name), "collection_name": name}


@pytest.fixture
async def make_store(pg_data_dir: str, tmp_path: Any) -> AsyncIterator[Callable[..., Any]]:
    """``await make_store(kind, dimension=8, **config)``: an initialized store on a fresh collection."""
    opened: list[Any] = []

    async def make(kind: str, name: str | None = None, **config: Any) -> Any:
        name = name or f"t{next(_counter)}_{uuid.uuid4().hex[:8]}"
        store = store_class(kind)()
        await store.initialize({**base_config(kind, pg_data_dir, tmp_path, name), **config})
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
