"""Memgraph (a Bolt graph server) as GRAPH_CLIENT and GRAPH_ENGINE, via GQLAlchemy.

GQLAlchemy is imported lazily, on ``initialize``: pin ``gqlalchemy>=1.8,<1.9``
(1.9 pulls TensorFlow, which breaks ray.serve). Single statements go
through ``gqlalchemy.Memgraph`` (autocommit); ``execute_in_transaction``
opens its own ``mgclient`` connection (GQLAlchemy's driver) with autocommit
off, since GQLAlchemy has no transaction API.

The data model is the one in `providers.graph.engine` (label ``Entity``,
edge type ``RELATES``, type as a property, JSON properties, ISO-8601 UTC
strings), so the engine's queries are shared with Ladybug; only the schema
(index and uniqueness constraint) and the BFS syntax are Memgraph's own.

The server takes many clients: ``max_replicas`` is unbounded. Each replica
runs its calls on one thread (GQLAlchemy's cached connection is not
thread-safe); add replicas for throughput.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from pydantic import Field, SecretStr

from providers.config_base import ProviderConfig, parse_provider_config
from providers.errors import InvalidRequestError, ProviderCallError
from providers.graph.client_base import SyncGraphClient
from providers.graph.engine import CypherGraphEngine, GraphEngineConfig
from providers.owner_thread import OwnerThread

logger = logging.getLogger(__name__)

# Messages of a lost or refused connection (the driver raises one DatabaseError class for all).
_CONNECTION_RE = re.compile(r"connect|connection|socket|timed? ?out|broken pipe|reset by peer|ssl|handshake",
                            re.IGNORECASE)


class MemgraphClientConfig(ProviderConfig):
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(7687, ge=1, le=65535)
    username: str = Field("", description="Empty: no authentication.")
    password: SecretStr = Field(SecretStr(""), description="A secret: never logged or echoed.")
    encrypted: bool = Field(False, description="TLS to the server (Bolt+s).")
    client_name: str = Field("provider-registry", min_length=1)


class MemgraphEngineConfig(GraphEngineConfig, MemgraphClientConfig):
    pass


def _classify(exc: BaseException, what: str) -> Exception:
    """A caller error for a bad query, a provider error for the connection (never the password)."""
    message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if type(exc).__name__ in ("OperationalError", "InterfaceError", "GQLAlchemyWaitForConnectionError") \
            or _CONNECTION_RE.search(message):
        return ProviderCallError(f"Memgraph {what}: {message}")
    return InvalidRequestError(message, "query")


def _plain(value: Any) -> Any:
    """Driver node/edge objects as dicts of their properties (rows stay JSON-friendly)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    props = getattr(value, "_properties", None)
    if props is None and hasattr(value, "properties") and not isinstance(value, (str, bytes)):
        props = value.properties
    if isinstance(props, dict):
        return {k: _plain(v) for k, v in props.items()}
    return value


class MemgraphGraphClient(SyncGraphClient):
    """Raw Cypher on a Memgraph server."""

    @classmethod
    def max_replicas(cls, config: dict[str, Any]) -> int | None:
        return None  # a server: any number of clients

    def __init__(self) -> None:
        # GQLAlchemy's cached connection is not thread-safe: one thread owns it.
        super().__init__(OwnerThread("Memgraph client", thread_name="memgraph"))
        self.cfg: MemgraphClientConfig | None = None
        self._mg: Any = None

    async def initialize(self, config: dict[str, Any]) -> None:
        self.cfg = parse_provider_config(MemgraphClientConfig, config)
        try:
            from gqlalchemy import Memgraph
        except ImportError:
            raise ProviderCallError("Memgraph needs the 'gqlalchemy>=1.8,<1.9' package") from None
        self._thread.start()
        c = self.cfg
        self._mg = Memgraph(host=c.host, port=c.port, username=c.username, password=c.password.get_secret_value(),
                            encrypted=c.encrypted, client_name=c.client_name)
        try:
            await self.execute("RETURN 1 AS ok")  # fail at start, not on the first call
        except Exception:
            await self.close()
            raise

    def _execute_sync(self, query: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return [_plain(row) for row in self._mg.execute_and_fetch(query, parameters)]
        except (InvalidRequestError, ProviderCallError):
            raise
        except Exception as exc:
            raise _classify(exc, f"at {self.cfg.host}:{self.cfg.port}") from None

    def _transaction_sync(self, statements: list[tuple[str, dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        import mgclient

        c = self.cfg
        try:
            conn = mgclient.connect(host=c.host, port=c.port, username=c.username or None,
                                    password=c.password.get_secret_value() or None, client_name=c.client_name,
                                    sslmode=mgclient.MG_SSLMODE_REQUIRE if c.encrypted else mgclient.MG_SSLMODE_DISABLE)
        except Exception as exc:
            raise ProviderCallError(f"cannot connect to Memgraph at {c.host}:{c.port}: "
                                    f"{(str(exc).splitlines() or [''])[0]}") from None
        try:
            conn.autocommit = False
            out = []
            for query, params in statements:
                cursor = conn.cursor()
                cursor.execute(query, params)
                names = [d.name for d in cursor.description or []]
                out.append([_plain(dict(zip(names, row))) for row in cursor.fetchall()])
            conn.commit()
            return out
        except Exception as exc:
            try:
                conn.rollback()
            except Exception:  # the connection may be gone; the server drops the transaction then
                pass
            raise _classify(exc, "transaction") from None
        finally:
            conn.close()

    async def health_check(self) -> dict[str, Any]:
        where = f"{self.cfg.host}:{self.cfg.port}" if self.cfg else None
        try:
            await asyncio.wait_for(self.execute("RETURN 1 AS ok"), timeout=5)
            return {"status": "healthy", "backend": "memgraph", "server": where}
        except Exception as exc:  # never raises, by contract
            return {"status": "unhealthy", "backend": "memgraph", "server": where,
                    "error": f"{type(exc).__name__}: {exc}"[:300]}

    async def close(self) -> None:
        def shut() -> None:
            conn = getattr(self._mg, "_cached_connection", None)
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    logger.debug("Memgraph close failed", exc_info=True)
            self._mg = None

        await self._thread.close(shut)


class MemgraphGraphEngine(CypherGraphEngine):
    """GRAPH_ENGINE on a Memgraph server."""

    config_model = MemgraphEngineConfig
    engine_name = "memgraph"

    @classmethod
    def max_replicas(cls, config: dict[str, Any]) -> int | None:
        return None

    def _make_client(self) -> MemgraphGraphClient:
        return MemgraphGraphClient()

    def _client_config(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {k: raw[k] for k in MemgraphClientConfig.model_fields if k in raw}

    async def _ensure_schema(self) -> None:
        # Each is idempotent in effect; "already exists" (or an older server
        # without edge-property indexes) is not a reason to refuse to start.
        for statement in ("CREATE INDEX ON :Entity(id)",
                          "CREATE CONSTRAINT ON (e:Entity) ASSERT e.id IS UNIQUE",
                          "CREATE INDEX ON :Entity(entity_type)",
                          "CREATE EDGE INDEX ON :RELATES(id)"):
            try:
                await self.client.execute(statement)
            except InvalidRequestError as exc:
                logger.debug("Memgraph schema statement skipped (%s): %s", statement, exc)

    def _reach_pattern(self, depth: int, typed: bool) -> str:
        # *BFS reaches each node once along a shortest walk: cycles cannot loop.
        where = " (rr, nn | rr.type = $rtype)" if typed else ""
        return f"-[:RELATES *BFS ..{int(depth)}{where}]-"

    def _path_query(self, depth: int) -> str:
        return (f"MATCH p = (a:Entity {{id: $source}})-[:RELATES *BFS ..{int(depth)}]-(b:Entity {{id: $target}}) "
                "RETURN [n IN nodes(p) | n.id] AS node_ids, [r IN relationships(p) | r.id] AS rel_ids LIMIT 1")
