"""SQL injection against the pgvector store on the real embedded PostgreSQL.

Every name the config can set (schema, table, the four columns, the text search
configuration, the database, the index settings) is tried with injection
payloads: each is either refused when the store is configured, with an error
naming the key, or used literally, quoted, and harmless. Then the caller's
inputs: metadata filters (keys, operators, values, JSON paths), document ids,
contents and metadata, and hybrid search text. After every attack a victim
table must still exist with its rows unchanged, and no table may have
appeared or gone.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import psycopg
import pytest

from providers.errors import ConfigError, InvalidRequestError
from providers.interfaces.vector_stores import VectorDocument
from providers.vector_stores import embedded_postgres

DIM = 4
PAYLOADS = [
    "x; DROP TABLE victim; --",
    "victim; DROP TABLE victim",
    '"quoted"',
    'a"b',
    "a'b",
    "x') OR 1=1 --",
    "a b",
    "a-b",
    "a.b",
    "a\nb",
    "victim\n",  # re's "$" matches before a final newline
    "tаble",  # Cyrillic a
    "表",
    "ａｂｃ",  # fullwidth
    "a\x00b",
    "",
    "1abc",
    "a" * 64,  # PostgreSQL would silently truncate it to 63 bytes
    "a" * 10_000,
    "$1",
    "%s",
    "{x}",
]
NAME_KEYS = ["schema", "table_name", "id_column", "content_column", "vector_column", "metadata_column",
             "text_search_config"]


def doc(i: str, content: str = "", **metadata: Any) -> VectorDocument:
    rng = np.random.default_rng(abs(hash(i)) % 2**32)
    return VectorDocument(id=i, content=content or f"document {i}", embedding=rng.standard_normal(DIM).astype(np.float32),
                          metadata=metadata)


def tables(pg_data_dir: str) -> set[str]:
    with psycopg.connect(embedded_postgres.ensure_running(pg_data_dir), autocommit=True) as conn:
        rows = conn.execute("SELECT schemaname || '.' || tablename FROM pg_tables "
                            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").fetchall()
    return {r[0] for r in rows}


class Victim:
    """A table with known rows; `check()` proves it survived, unchanged, and nothing else changed."""

    def __init__(self, store: Any, pg_data_dir: str) -> None:
        self.store, self.pg_data_dir = store, pg_data_dir
        self.docs = [doc("v1", "alpha", topic="keep"), doc("v2", "beta", n=2), doc("v3", "gamma")]
        self.tables: set[str] = set()

    async def setup(self) -> Victim:
        await self.store.store_documents(self.docs)
        self.tables = tables(self.pg_data_dir)
        return self

    async def check(self, *made: Any) -> None:
        """``made``: stores the test created on purpose (their tables may be new)."""
        assert await self.store.count_documents() == 3
        got = await self.store.search_by_ids(["v1", "v2", "v3"])
        assert [(d.id, d.content, d.metadata) for d in got] == [(d.id, d.content, d.metadata) for d in self.docs]
        now = tables(self.pg_data_dir)
        assert self.tables <= now, f"tables gone: {self.tables - now}"
        expected = {f"{s.cfg.schema_name}.{t}" for s in made for t in (s.cfg.table_name, "provider_registry_spaces")}
        assert now - self.tables <= expected, f"unexpected tables: {now - self.tables - expected}"


@pytest.fixture
async def victim(make_store, pg_data_dir):
    store = await make_store("pgvector", name="victim", dimension=DIM)
    return await Victim(store, pg_data_dir).setup()


# -- configurable names -----------------------------------------------------------------------------

@pytest.mark.parametrize("key", NAME_KEYS)
async def test_injection_through_every_configurable_name_is_refused(make_store, victim, key):
    """Each payload is refused at initialize, naming the key, before any SQL runs."""
    for payload in PAYLOADS:
        with pytest.raises(ConfigError) as info:
            await make_store("pgvector", dimension=DIM, **{key: payload})
        assert f"config.{key}" in str(info.value), (payload, str(info.value))
        await victim.check()


@pytest.mark.parametrize(("key", "payload"), [
    ("distance", "cosine; DROP TABLE victim"),
    ("index", {"type": "hnsw; DROP TABLE victim"}),
    ("index", {"iterative_scan": "off'; DROP TABLE victim; --"}),
    ("index", {"m": "16); DROP TABLE victim; --"}),
    ("index", {"lists": "1 --"}),
    ("hybrid_fusion", "rrf' --"),
    ("dimension", "4); DROP TABLE victim; --"),
])
async def test_injection_through_index_and_metric_settings_is_refused(make_store, victim, key, payload):
    with pytest.raises(ConfigError) as info:
        await make_store("pgvector", **{"dimension": DIM, key: payload})
    assert f"config.{key}" in str(info.value)
    await victim.check()


@pytest.mark.parametrize("payload", ["x; DROP TABLE victim; --", 'a"b', "x') OR 1=1 --", "db?host=/nonexistent",
                                     "db&user=nobody", "db/../postgres", "tаble"])
async def test_database_name_is_used_literally(make_store, victim, pg_data_dir, payload):
    """The embedded server creates the database by its literal name (a quoted identifier)
    and connects to exactly that database: the name can neither run SQL nor rewrite the
    connection (host, user) it is part of."""
    store = await make_store("pgvector", dimension=DIM, database=payload)
    await store.store_documents([doc("d1", "in its own database")])
    uri = embedded_postgres.ensure_running(pg_data_dir)
    with psycopg.connect(uri, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (payload,)).fetchone()
    async with store.pool.connection() as conn:
        assert (await (await conn.execute("SELECT current_database()")).fetchone())[0] == payload
    assert await store.count_documents() == 1
    await victim.check(store)


@pytest.mark.parametrize("payload", ["a" * 64, "表" * 22, "", "a\x00b"])
async def test_database_names_postgres_cannot_hold_are_refused(make_store, victim, payload):
    with pytest.raises(ConfigError, match="config.database"):
        await make_store("pgvector", dimension=DIM, database=payload)
    await victim.check()


async def test_reserved_words_are_quoted_not_interpreted(make_store, victim, pg_data_dir):
    """Valid identifiers that are SQL keywords work end to end: proof that every name is
    quoted as an identifier (unquoted, ``CREATE TABLE select (from text ...)`` is a syntax error)."""
    store = await make_store("pgvector", dimension=DIM, schema="order", name="select", id_column="from",
                             content_column="where", vector_column="limit", metadata_column="group",
                             text_search_config="simple")
    await store.store_documents([doc("a", "red apples", colour="red"), doc("b", "green pears", colour="green")])
    hits = await store.search_similar(doc("a").embedding, top_k=2, filters={"colour": "red"})
    assert [h.id for h in hits] == ["a"]
    hybrid = await store.hybrid_search(doc("b").embedding, "pears", top_k=1)
    assert hybrid[0].id == "b"
    await store.create_index({"type": "ivfflat", "lists": 1})
    assert await store.delete_documents(["a"]) == 1 and await store.count_documents() == 1
    await victim.check(store)


# -- metadata filters -----------------------------------------------------------------------------

BAD_KEYS = ["a'b", 'a"b', "a; DROP TABLE victim; --", "a)", "a') OR 1=1 --", "{a,b}", "a[0]", "a->>'x'",
            "a\n", "a..b", ".a", "a.", "a b", "tópico", "a" * 65, "", "a.b.c.d.e.f.g.h.i", "$.a", "a#>'{}'"]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_filter_keys_are_refused_naming_the_path(victim, key):
    for filters in ({key: "x"}, {key: {"$exists": True}}, {"$or": [{key: 1}]}):
        for call in (victim.store.count_documents(filters), victim.store.list_documents(filters=filters),
                     victim.store.search_similar(doc("q").embedding, filters=filters)):
            with pytest.raises(InvalidRequestError) as info:
                await call
            assert info.value.field.startswith("filters")
    await victim.check()


@pytest.mark.parametrize("filters", [
    {"topic": {"$where": "1=1"}}, {"topic": {"$regex": ".*"}}, {"$expr": {"a": 1}}, {"$where": "1=1"},
    {"topic": {"$eq": {"$ne": 1}}}, {"topic": {"$in": "keep') OR 1=1 --"}}, {"topic": {"$gt": "1; DROP TABLE victim"}},
    {"created_at": {"$gte": "2020-01-01' OR 1=1 --"}}, {"created_at": "now()"}, {"n": {"$lt": [1]}},
    {"topic": None}, {"topic": ["keep"]}, {"topic": {"$exists": "true"}},
])
async def test_malformed_filters_never_reach_sql(victim, filters):
    with pytest.raises(InvalidRequestError) as info:
        await victim.store.count_documents(filters)
    assert info.value.field.startswith("filters")
    await victim.check()


VALUES = ["') OR 1=1 --", "x' OR '1'='1", "keep' --", '"; DROP TABLE victim; --', "keep\"}", '{"topic": "keep"}',
          "\\", "\\'", "%", "_", "*", "$1", "%s", "{}", "[]", "null", "true", "ü", "𝔘nicode", "a\nb", " keep", "x" * 5000]


async def test_filter_values_are_compared_literally(make_store, victim):
    """Each value matches exactly the one document holding it, through every operator that
    takes values; ``') OR 1=1 --`` matches nothing else."""
    store = await make_store("pgvector", dimension=DIM)
    await store.store_documents([doc(f"d{i}", topic=v, nested={"k": v}) for i, v in enumerate(VALUES)]
                                + [doc("plain", topic="keep", nested={"k": "keep"})])
    for i, value in enumerate(VALUES):
        for filters in ({"topic": value}, {"topic": {"$in": [value]}}, {"nested.k": value},
                        {"$or": [{"topic": value}, {"topic": value}]}):
            assert [d.id for d in await store.list_documents(filters=filters)] == [f"d{i}"], (value, filters)
        assert await store.count_documents({"topic": {"$ne": value}}) == len(VALUES)
        assert await store.count_documents({"topic": {"$nin": [value, "keep"]}}) == len(VALUES) - 1
    await victim.check(store)


async def test_nul_in_a_filter_value_is_a_caller_error(victim):
    for filters, field in (({"topic": "a\x00b"}, "filters.topic"), ({"t": {"$in": ["ok", "\x00"]}}, "filters.t.$in[1]")):
        with pytest.raises(InvalidRequestError) as info:
            await victim.store.count_documents(filters)
        assert info.value.field == field
    await victim.check()


async def test_json_paths_are_data_not_syntax(make_store, victim):
    """A dotted key walks nested objects; a stored key holding a dot is a different key.
    Path parts are bound as a text[] parameter, never spliced into ``#>`` syntax."""
    store = await make_store("pgvector", dimension=DIM)
    await store.store_documents([doc("nested", a={"b": "x"}), doc("dotted", **{"a.b": "x"}),
                                 doc("deep", a={"b": {"c": 1}})])
    assert [d.id for d in await store.list_documents(filters={"a.b": "x"})] == ["nested"]
    assert [d.id for d in await store.list_documents(filters={"a.b.c": {"$gte": 1}})] == ["deep"]
    assert {d.id for d in await store.list_documents(filters={"a.b": {"$exists": True}})} == {"nested", "deep"}
    await victim.check(store)


# -- documents and hybrid search text ----------------------------------------------------------------

async def test_ids_contents_and_metadata_are_stored_literally(make_store, victim):
    store = await make_store("pgvector", dimension=DIM)
    docs = [doc(v[:512] if v.strip() else f"blank{i}", content=v if v.strip() else "blank", **{"k": v, "key'; --": v})
            for i, v in enumerate(VALUES)]
    # above 32 documents a write goes through COPY: cover both paths
    docs += [doc(f"bulk {v[:50]} {i}", content=v if v.strip() else "x") for i, v in enumerate(VALUES * 2)]
    await store.store_documents(docs)
    got = await store.search_by_ids([d.id for d in docs])
    assert [(d.id, d.content, d.metadata) for d in got] == [(d.id, d.content, d.metadata) for d in docs]
    assert await store.delete_documents(["') OR 1=1 --"]) == 1
    assert await store.count_documents() == len(docs) - 1
    await victim.check(store)


SEARCH_TEXTS = ["'); DROP TABLE victim; --", "' OR 1=1 --", '" OR ""="', "a & b | !c", "alpha:*", "alpha <-> beta",
                "!!!", "\\", "'", '"unterminated', "-", "OR", "or or or", "()", "::regconfig", "$1", "%s",
                "ünïcødé 表", "alpha " * 2000, "\n\t", "*", "english'; SELECT pg_sleep(10); --"]


@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
async def test_hybrid_search_text_is_text(make_store, victim, fusion):
    """Every text is a query over words (websearch_to_tsquery with a bound parameter):
    results or nothing, never a database error, and the words inside an injection
    still find the document that holds them."""
    store = await make_store("pgvector", dimension=DIM, hybrid_fusion=fusion)
    await store.store_documents([doc("t1", "drop table victim"), doc("t2", "alpha beta"),
                                 doc("t3", "nothing related")])
    for text in SEARCH_TEXTS:
        hits = await store.hybrid_search(doc("q").embedding, text, top_k=3)
        assert len(hits) <= 3 and all(h.id in {"t1", "t2", "t3"} for h in hits), text
    hits = await store.hybrid_search(doc("q").embedding, SEARCH_TEXTS[0], top_k=1, vector_weight=0.0)
    assert hits[0].id == "t1"
    await victim.check(store)


async def test_nul_in_search_text_is_a_caller_error(victim):
    with pytest.raises(InvalidRequestError) as info:
        await victim.store.hybrid_search(doc("q").embedding, "a\x00b", top_k=3)
    assert info.value.field == "text_query"
    await victim.check()


async def test_each_store_is_confined_to_its_own_table(make_store, victim):
    """A second store with an injection-looking but valid table name (``victim_drop``)
    touches only its own table."""
    store = await make_store("pgvector", dimension=DIM, name=f"victim_drop_{uuid.uuid4().hex[:6]}")
    await store.store_documents([doc("v1", "same id as the victim's")])
    assert await store.delete_documents(["v1", "v2", "v3"]) == 1
    await victim.check(store)
