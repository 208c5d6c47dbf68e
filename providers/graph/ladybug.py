"""Ladybug (PyPI ``ladybug``, a Kùzu fork) as GRAPH_CLIENT and GRAPH_ENGINE.

An embedded database: the process that opens a path read-write holds an
exclusive file lock on it, so a second process fails at once with "Could
not set lock on file" (read-only opens may share it). Hence
``max_replicas`` is 1, and the registry refuses more replicas up front.

Every call runs on one dedicated thread: the database's Python binding is
synchronous, and one thread also keeps a ``Connection`` (whose explicit
transactions are per connection) out of concurrent use.

Schema (Kùzu style, declared tables)::

    NODE TABLE Entity(id STRING PRIMARY KEY, name, entity_type, properties,
                      created_at, updated_at STRING, confidence DOUBLE)
    REL TABLE RELATES(FROM Entity TO Entity, id, type, properties, created_at,
                      updated_at, valid_from, valid_to STRING, confidence DOUBLE)

Timestamps are ISO-8601 UTC strings (see `providers.graph.engine`): Ladybug's
TIMESTAMP would return naive datetimes and refuses strings on assignment.
Relationship ids have no index (Ladybug indexes node primary keys only), so
the engine keeps a RelKey table mapping each to its source entity.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from pathlib import Path
from typing import Any

from pydantic import Field

from providers.config_base import ProviderConfig, parse_provider_config
from providers.errors import ConfigError, InvalidRequestError, ProviderCallError
from providers.graph.client_base import SyncGraphClient
from providers.graph.engine import CypherGraphEngine, GraphEngineConfig
from providers.owner_thread import OwnerThread

logger = logging.getLogger(__name__)

DEFAULT_PATH = ".data/graph/ladybug.db"
LARGE_LIST = 64  # list parameters longer than this bypass the prepared-statement cache
# Ladybug's error messages start with their kind; these kinds are the query's fault.
_CALLER_ERRORS = ("Parser exception", "Binder exception", "Catalog exception", "Conversion exception",
                  "Overflow exception", "Runtime exception", "Interrupted")


class LadybugClientConfig(ProviderConfig):
    path: str = Field(DEFAULT_PATH, min_length=1, description="Database file (':memory:' for none); parents created.")
    read_only: bool = Field(False, description="Open read-only (several processes may then share the file).")
    lock_wait_s: float = Field(
        30.0, ge=0, le=600,
        description="How long opening waits for another process to release the database's lock. "
        "Waiting in the replica beats failing: Serve backs off between failed replica starts, "
        "so a 10 s lock cost 36 s of outage when each start failed at once (measured).")


class LadybugEngineConfig(GraphEngineConfig, LadybugClientConfig):
    pass


def _caller_error(message: str) -> bool:
    return message.startswith(_CALLER_ERRORS) or "read-only" in message or "read only" in message


class LadybugGraphClient(SyncGraphClient):
    """Raw Cypher on an embedded Ladybug database."""

    @classmethod
    def max_replicas(cls, config: dict[str, Any]) -> int | None:
        return 1  # one process may hold the database's write lock

    def __init__(self) -> None:
        super().__init__(OwnerThread("Ladybug client", thread_name="ladybug"))
        self.cfg: LadybugClientConfig | None = None
        self._db: Any = None
        self._conn: Any = None

    async def initialize(self, config: dict[str, Any]) -> None:
        self.cfg = parse_provider_config(LadybugClientConfig, config)
        self._thread.start()
        try:
            await self._thread.run(self._open)
        except Exception:
            await self.close()
            raise

    def _open(self) -> None:
        import ladybug

        path = self.cfg.path
        if path != ":memory:":
            parent = Path(path).expanduser().parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create {parent}: {exc.strerror}", "config.path") from None
            if self.cfg.read_only and not Path(path).expanduser().exists():
                raise ConfigError(f"{path} does not exist (a read-only open cannot create it)", "config.path")
            path = str(Path(path).expanduser())
        deadline = time.monotonic() + self.cfg.lock_wait_s
        while True:
            try:
                self._db = ladybug.Database(path, read_only=self.cfg.read_only)
                self._conn = ladybug.Connection(self._db)
                return
            except RuntimeError as exc:
                # e.g. "Could not set lock on file ... (Lock is held by PID n)": another process has it
                locked = "lock" in str(exc).lower()
                if not locked or time.monotonic() >= deadline:
                    waited = f" (waited {self.cfg.lock_wait_s:g} s for the lock: config.lock_wait_s)" if locked else ""
                    raise ProviderCallError(
                        f"cannot open Ladybug database {self.cfg.path}: {_first_line(exc)}{waited}") from None
            time.sleep(0.1)

    # -- on the database thread --
    def _execute_sync(self, query: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        if self._conn is None:
            raise ProviderCallError("Ladybug client is closed")
        try:
            if _large(parameters):
                # Ladybug caches one prepared statement per query text; once bound to a
                # 10k-row list it stays slow for every later call (60 ms for one row,
                # against 0.5 ms; measured on 0.22). Big batches get a fresh statement.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    result = self._conn.execute(self._conn.prepare(query, parameters), parameters)
            else:
                result = self._conn.execute(query, parameters)
        except RuntimeError as exc:
            message = _first_line(exc)
            if _caller_error(message):
                raise InvalidRequestError(message, "query") from None
            raise ProviderCallError(f"Ladybug: {message}") from None
        results = result if isinstance(result, list) else [result]
        rows: list[dict[str, Any]] = []
        for res in results:
            try:
                columns = res.get_column_names()
                rows.extend(dict(zip(columns, values)) for values in res.get_all())
            finally:
                res.close()
        return rows

    def _transaction_sync(self, statements: list[tuple[str, dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        self._execute_sync("BEGIN TRANSACTION READ ONLY" if self.cfg.read_only else "BEGIN TRANSACTION", {})
        try:
            out = [self._execute_sync(q, p) for q, p in statements]
            self._execute_sync("COMMIT", {})
            return out
        except BaseException:
            try:
                self._execute_sync("ROLLBACK", {})
            except (InvalidRequestError, ProviderCallError):
                pass  # a failed statement already rolled the transaction back
            raise

    # -- the interface --
    async def health_check(self) -> dict[str, Any]:
        try:
            rows = await asyncio.wait_for(self.execute("CALL db_version() RETURN *"), timeout=5)
            return {"status": "healthy", "backend": "ladybug", "version": rows[0].get("version") if rows else None,
                    "path": self.cfg.path, "read_only": self.cfg.read_only}
        except Exception as exc:  # never raises, by contract
            return {"status": "unhealthy", "backend": "ladybug", "error": f"{type(exc).__name__}: {exc}"[:300]}

    async def close(self) -> None:
        def shut() -> None:
            # Closing releases the file lock, so a reopen (or another process) can take it.
            for handle in (self._conn, self._db):
                if handle is not None:
                    try:
                        handle.close()
                    except Exception:  # closing twice or after a failed open
                        logger.debug("Ladybug close failed", exc_info=True)
            self._conn = self._db = None

        await self._thread.close(shut)


class LadybugGraphEngine(CypherGraphEngine):
    """GRAPH_ENGINE on an embedded Ladybug database."""

    config_model = LadybugEngineConfig
    engine_name = "ladybug"

    @classmethod
    def max_replicas(cls, config: dict[str, Any]) -> int | None:
        return 1  # one process may hold the database's write lock

    def _make_client(self) -> LadybugGraphClient:
        return LadybugGraphClient()

    def _client_config(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {k: raw[k] for k in ("path", "read_only", "lock_wait_s") if k in raw}

    async def _ensure_schema(self) -> None:
        await self.client.execute(
            "CREATE NODE TABLE IF NOT EXISTS Entity(id STRING, name STRING, entity_type STRING, "
            "properties STRING, created_at STRING, updated_at STRING, confidence DOUBLE, PRIMARY KEY (id))")
        await self.client.execute(
            "CREATE REL TABLE IF NOT EXISTS RELATES(FROM Entity TO Entity, id STRING, type STRING, "
            "properties STRING, created_at STRING, updated_at STRING, confidence DOUBLE, "
            "valid_from STRING, valid_to STRING)")
        # Ladybug indexes node primary keys only; finding a relationship by id scanned
        # every edge (600 ms for 1,000 ids among 300k edges, 18 ms for one; measured on
        # 0.22). RelKey maps each relationship id to its source entity, so a lookup is
        # a key lookup plus a walk of that entity's edges (6 + 33 ms, 0.4 + 2.5 ms).
        await self.client.execute(
            "CREATE NODE TABLE IF NOT EXISTS RelKey(id STRING, source STRING, PRIMARY KEY (id))")
        await self._reconcile_keys()

    async def _reconcile_keys(self, force: bool = False) -> None:
        """Rebuild RelKey from the edges when it may not match them (a database from
        before the key table, or an admin Cypher write that bypassed it)."""
        if not force:
            keys = await self.client.execute("MATCH (k:RelKey) RETURN count(*) AS c")
            edges = await self.client.execute("MATCH (:Entity)-[r:RELATES]->(:Entity) RETURN count(*) AS c")
            if keys[0]["c"] == edges[0]["c"]:
                return
        # min(): ids are unique through this engine, but an admin write may repeat one.
        await self.client.execute_in_transaction([
            ("MATCH (k:RelKey) DELETE k", {}),
            ("MATCH (a:Entity)-[r:RELATES]->(:Entity) WITH r.id AS id, min(a.id) AS source "
             "WHERE id IS NOT NULL CREATE (:RelKey {id: id, source: source})", {})])

    async def _match_relationships(self, ids: list[str]) -> tuple[str, dict[str, Any]]:
        refs = await self.client.execute(
            "UNWIND $ids AS i MATCH (k:RelKey {id: i}) RETURN k.id AS id, k.source AS source", {"ids": ids})
        # An empty list has no element type to bind; a ref no entity has (ids are never
        # empty) matches nothing at the cost of one key lookup.
        refs = refs or [{"id": "", "source": ""}]
        return ("UNWIND $refs AS ref MATCH (a:Entity {id: ref.source}) "
                "MATCH (a)-[r:RELATES]->(b:Entity) WHERE r.id = ref.id", {"refs": refs})

    def _relationship_key_writes(self, rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        ids = [r["id"] for r in rows]
        return [*self._relationship_key_deletes(ids),
                ("UNWIND $rows AS row CREATE (:RelKey {id: row.id, source: row.source_id})",
                 {"rows": [{"id": r["id"], "source_id": r["source_id"]} for r in rows]})]

    def _relationship_key_deletes(self, ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
        return [("UNWIND $ids AS i MATCH (k:RelKey {id: i}) DELETE k", {"ids": ids})] if ids else []

    async def _after_admin_write(self, query: str) -> None:
        # Counts catch edges created or deleted; an id rewritten in place ("SET r.id")
        # or a create and a delete in one query leave them equal, so those rebuild.
        text = query.upper()
        rewrites = ".ID" in text and "SET" in text
        both = "DELETE" in text and ("CREATE" in text or "MERGE" in text)
        await self._reconcile_keys(force=rewrites or both)

    def _reach_pattern(self, depth: int, typed: bool) -> str:
        # SHORTEST: one breadth-first walk per destination, so cycles cannot blow up the result.
        where = " (rr, nn | WHERE rr.type = $rtype)" if typed else ""
        return f"-[:RELATES* SHORTEST 1..{int(depth)}{where}]-"

    def _path_query(self, depth: int) -> str:
        return (f"MATCH p = (a:Entity {{id: $source}})-[:RELATES* SHORTEST 1..{int(depth)}]-"
                f"(b:Entity {{id: $target}}) "
                "RETURN properties(nodes(p), 'id') AS node_ids, properties(rels(p), 'id') AS rel_ids LIMIT 1")


def _large(parameters: dict[str, Any]) -> bool:
    return any(isinstance(v, (list, tuple)) and len(v) > LARGE_LIST for v in parameters.values())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
