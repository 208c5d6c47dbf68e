"""What every Cypher graph engine checks and computes the same way.

Input checks run before any database work, so a bad batch writes nothing.
Rows come back from both engines as plain scalar columns (``e.id AS id``,
...), never as engine node objects, so one conversion serves both.

Storage model, shared by Ladybug and Memgraph:

* one node label ``Entity`` and one edge type ``RELATES``; ``entity_type``
  and the relationship ``type`` are *properties*, so any type works without
  schema changes and no type name is ever formatted into a query;
* ``properties`` is a JSON string (keys sorted): Ladybug has no map column
  of free shape, and one encoding keeps both engines' rows identical;
* timestamps are fixed-width ISO-8601 UTC strings
  (``2024-05-01T12:00:00.000000+00:00``). They sort and compare as text
  exactly as in time, they pass through both drivers unchanged (Ladybug's
  TIMESTAMP drops the zone and Bolt drivers differ in zoned-datetime
  support), and parameters never carry a driver-specific datetime type.

Only validated integers (depths, limits) are ever formatted into query text:
Cypher does not accept parameters in variable-length bounds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import uuid
from abc import abstractmethod
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Iterable

import orjson
from pydantic import Field

from providers.config_base import ProviderConfig, parse_provider_config
from providers.errors import InvalidRequestError, ProviderCallError
from providers.interfaces.graph_clients import GraphClient
from providers.interfaces.graph_engines import Entity, GraphEngine, GraphSearchResult, Relationship
from providers.owner_thread import OwnerThread

logger = logging.getLogger(__name__)

MAX_ID_CHARS = 512
MAX_TYPE_CHARS = 256
MAX_NAME_CHARS = 4096
MAX_PROPERTIES_BYTES = 64 * 1024
DIRECTIONS = ("outgoing", "incoming", "both")


class GraphEngineConfig(ProviderConfig):
    """Keys every graph engine understands (each engine adds its own)."""

    max_depth: int = Field(5, ge=1, le=20, description="Largest depth any traversal accepts.")
    max_batch_size: int = Field(10_000, ge=1, le=1_000_000, description="Items per batch call.")
    max_limit: int = Field(10_000, ge=1, le=1_000_000, description="Largest limit of find_entities.")


# -- input checks ----------------------------------------------------------------------

def check_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError("must be a non-empty string", where)
    if len(value) > MAX_ID_CHARS:
        raise InvalidRequestError(f"has {len(value)} characters; the limit is {MAX_ID_CHARS}", where)
    if "\x00" in value:
        raise InvalidRequestError("must not contain NUL characters", where)
    return value


def new_or_checked_id(value: Any, where: str) -> str:
    """A caller's id, or a fresh one where none was given."""
    return uuid.uuid4().hex if value is None or value == "" else check_id(value, where)


def check_text(value: Any, where: str, limit: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise InvalidRequestError("must be a non-empty string" if not allow_empty else "must be a string", where)
    if len(value) > limit:
        raise InvalidRequestError(f"has {len(value)} characters; the limit is {limit}", where)
    if "\x00" in value:
        raise InvalidRequestError("must not contain NUL characters", where)
    return value


def check_type(value: Any, where: str) -> str:
    return check_text(value, where, MAX_TYPE_CHARS)


def check_properties(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"must be an object, got {type(value).__name__}", where)
    if any(not isinstance(k, str) for k in value):
        raise InvalidRequestError("keys must be strings", where)
    encoded = encode_properties(value, where)
    if len(encoded) > MAX_PROPERTIES_BYTES:
        raise InvalidRequestError(f"is {len(encoded)} bytes as JSON; the limit is {MAX_PROPERTIES_BYTES}", where)
    if "\\u0000" in encoded:
        raise InvalidRequestError("must not contain NUL characters", where)
    return value


def encode_properties(value: dict[str, Any], where: str = "properties") -> str:
    try:
        # sorted keys: equal dicts give equal text, which find_entities' prefilter relies on
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidRequestError(f"must be JSON-serializable ({exc})", where) from None


def decode_properties(text: Any) -> dict[str, Any]:
    if not text:
        return {}
    if isinstance(text, dict):
        return text
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"_raw": text}  # written by raw Cypher: shown, not lost
    return value if isinstance(value, dict) else {"_value": value}


def check_confidence(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise InvalidRequestError("must be a number from 0 to 1", where)
    return float(value)


def check_depth(depth: Any, max_depth: int, where: str = "max_depth") -> int:
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise InvalidRequestError(f"must be an integer, got {type(depth).__name__}", where)
    if depth < 1:
        raise InvalidRequestError("must be at least 1", where)
    if depth > max_depth:
        raise InvalidRequestError(f"is {depth}; this engine accepts at most {max_depth} (config.max_depth)", where)
    return depth


def check_limit(limit: Any, max_limit: int, where: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidRequestError("must be a positive integer", where)
    if limit > max_limit:
        raise InvalidRequestError(f"is {limit}; the limit is {max_limit} (config.max_limit)", where)
    return limit


def check_direction(direction: Any) -> str:
    if direction not in DIRECTIONS:
        raise InvalidRequestError(f"must be one of {list(DIRECTIONS)}, got {direction!r}", "direction")
    return direction


def check_batch(items: Any, where: str, limit: int) -> list[Any]:
    if not isinstance(items, (list, tuple)):
        raise InvalidRequestError(f"must be a list, got {type(items).__name__}", where)
    if len(items) > limit:
        raise InvalidRequestError(f"has {len(items)} items; the limit is {limit} (config.max_batch_size)", where)
    return list(items)


_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


# -- time --------------------------------------------------------------------------------

def to_utc(value: Any, where: str) -> datetime | None:
    """An aware UTC datetime from a datetime (naive = UTC) or an ISO string."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequestError(f"{value!r} is not an ISO-8601 date-time", where) from None
    if not isinstance(value, datetime):
        raise InvalidRequestError(f"must be a date-time, got {type(value).__name__}", where)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def iso(value: datetime | None) -> str | None:
    """Fixed width (microseconds, +00:00), so text order is time order."""
    return None if value is None else value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def from_iso(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return to_utc(value, "timestamp")
    try:
        return to_utc(str(value), "timestamp")
    except InvalidRequestError:
        return None  # a foreign value written by raw Cypher: not a time


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


# -- entities and relationships in, parameter rows out -------------------------------------

def as_entity(value: Any, where: str) -> Entity:
    """An `Entity` from one, or from a dict of its fields (JSON callers)."""
    if isinstance(value, Entity):
        return value
    if isinstance(value, dict):
        fields = set(Entity.__dataclass_fields__)
        unknown = set(value) - fields
        if unknown:
            raise InvalidRequestError(f"unknown field(s) {sorted(unknown)}", where)
        return Entity(**{"id": "", "name": "", "entity_type": "", **value})
    raise InvalidRequestError(f"must be an Entity or an object, got {type(value).__name__}", where)


def as_relationship(value: Any, where: str) -> Relationship:
    if isinstance(value, Relationship):
        return value
    if isinstance(value, dict):
        unknown = set(value) - set(Relationship.__dataclass_fields__)
        if unknown:
            raise InvalidRequestError(f"unknown field(s) {sorted(unknown)}", where)
        return Relationship(**{"id": "", "source_id": "", "target_id": "", "relationship_type": "", **value})
    raise InvalidRequestError(f"must be a Relationship or an object, got {type(value).__name__}", where)


def entity_row(entity: Any, where: str, now: datetime) -> dict[str, Any]:
    """The parameter row of one entity (checked); ``created_at`` defaults to now."""
    e = as_entity(entity, where)
    created = to_utc(e.created_at, f"{where}.created_at") or now
    return {
        "id": new_or_checked_id(e.id, f"{where}.id"),
        "name": check_text(e.name, f"{where}.name", MAX_NAME_CHARS),
        "entity_type": check_type(e.entity_type, f"{where}.entity_type"),
        "properties": encode_properties(check_properties(e.properties, f"{where}.properties")),
        "created_at": iso(created),
        "updated_at": iso(now),
        "confidence": check_confidence(e.confidence, f"{where}.confidence"),
    }


def relationship_row(rel: Any, where: str, now: datetime) -> dict[str, Any]:
    r = as_relationship(rel, where)
    valid_from = to_utc(r.valid_from, f"{where}.valid_from")
    valid_to = to_utc(r.valid_to, f"{where}.valid_to")
    if valid_from and valid_to and valid_to < valid_from:
        raise InvalidRequestError("is before valid_from", f"{where}.valid_to")
    return {
        "id": new_or_checked_id(r.id, f"{where}.id"),
        "source_id": check_id(r.source_id, f"{where}.source_id"),
        "target_id": check_id(r.target_id, f"{where}.target_id"),
        "type": check_type(r.relationship_type, f"{where}.relationship_type"),
        "properties": encode_properties(check_properties(r.properties, f"{where}.properties")),
        "created_at": iso(to_utc(r.created_at, f"{where}.created_at") or now),
        "updated_at": iso(now),
        "confidence": check_confidence(r.confidence, f"{where}.confidence"),
        # "" stands for "open": a null parameter has no type Ladybug can infer
        "valid_from": iso(valid_from) or "",
        "valid_to": iso(valid_to) or "",
    }


def unique_rows(rows: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    seen: dict[str, int] = {}
    for n, row in enumerate(rows):
        if row["id"] in seen:
            raise InvalidRequestError(f"id {row['id']!r} appears twice in one batch (also at [{seen[row['id']]}])",
                                      f"{where}[{n}].id")
        seen[row["id"]] = n
    return rows


# -- rows in, dataclasses out ------------------------------------------------------------

# Every engine query that returns entities or relationships projects these columns.
ENTITY_COLUMNS = "{v}.id AS id, {v}.name AS name, {v}.entity_type AS entity_type, {v}.properties AS properties, " \
                 "{v}.created_at AS created_at, {v}.updated_at AS updated_at, {v}.confidence AS confidence"
REL_COLUMNS = "{r}.id AS id, {a}.id AS source_id, {b}.id AS target_id, {r}.type AS type, " \
              "{r}.properties AS properties, {r}.created_at AS created_at, {r}.updated_at AS updated_at, " \
              "{r}.confidence AS confidence, {r}.valid_from AS valid_from, {r}.valid_to AS valid_to"


def entity_columns(v: str = "e") -> str:
    return ENTITY_COLUMNS.format(v=v)


def rel_columns(r: str = "r", a: str = "a", b: str = "b") -> str:
    return REL_COLUMNS.format(r=r, a=a, b=b)


def row_to_entity(row: dict[str, Any]) -> Entity:
    conf = row.get("confidence")
    return Entity(id=row["id"], name=row.get("name") or "", entity_type=row.get("entity_type") or "",
                  properties=decode_properties(row.get("properties")), created_at=from_iso(row.get("created_at")),
                  updated_at=from_iso(row.get("updated_at")), confidence=1.0 if conf is None else float(conf))


def row_to_relationship(row: dict[str, Any]) -> Relationship:
    conf = row.get("confidence")
    return Relationship(
        id=row["id"], source_id=row["source_id"], target_id=row["target_id"],
        relationship_type=row.get("type") or "", properties=decode_properties(row.get("properties")),
        created_at=from_iso(row.get("created_at")), updated_at=from_iso(row.get("updated_at")),
        confidence=1.0 if conf is None else float(conf),
        valid_from=from_iso(row.get("valid_from")), valid_to=from_iso(row.get("valid_to")))


def properties_match(entity: Entity, wanted: dict[str, Any]) -> bool:
    return all(k in entity.properties and entity.properties[k] == v for k, v in wanted.items())


def property_fragments(wanted: dict[str, Any]) -> list[str]:
    """Substrings the stored JSON must contain for each wanted pair: a cheap prefilter
    the database runs (``CONTAINS``); the exact comparison happens in Python."""
    out = []
    for key, value in wanted.items():
        pair = encode_properties({key: value})  # '{"k":v}'
        out.append(pair[1:-1])
    return out


# -- paths and timelines --------------------------------------------------------------------

def assemble_path(node_ids: list[str], rel_ids: list[str], entities: dict[str, Entity],
                  relationships: dict[str, Relationship], source_id: str, target_id: str) -> GraphSearchResult | None:
    """Entities and relationships in path order, after checking the chain holds together."""
    if not node_ids or node_ids[0] != source_id or node_ids[-1] != target_id or len(rel_ids) != len(node_ids) - 1:
        return None
    try:
        ents = [entities[i] for i in node_ids]
        rels = [relationships[i] for i in rel_ids]
    except KeyError:  # deleted between the two reads
        return None
    directions = []
    for n, rel in enumerate(rels):
        here, there = node_ids[n], node_ids[n + 1]
        if (rel.source_id, rel.target_id) == (here, there):
            directions.append("outgoing")
        elif (rel.source_id, rel.target_id) == (there, here):
            directions.append("incoming")
        else:
            return None
    return GraphSearchResult(entities=ents, relationships=rels, score=None,
                             metadata={"length": len(rels), "source_id": source_id, "target_id": target_id,
                                       "directions": directions})


def build_timeline(entity: Entity, relationships: Iterable[Relationship],
                   start: datetime | None, end: datetime | None) -> list[dict[str, Any]]:
    """Events in time order (ties: creation before update, start before end, then id).

    Only the latest update of an entity is known (one ``updated_at``): the
    timeline is what the graph records, not an audit log.
    """
    events: list[tuple[datetime, int, str, dict[str, Any]]] = []

    def add(when: datetime | None, rank: int, kind: str, **data: Any) -> None:
        if when is not None and (start is None or when >= start) and (end is None or when <= end):
            events.append((when, rank, data.get("relationship_id") or entity.id, {"timestamp": when, "event": kind,
                                                                                  "entity_id": entity.id, **data}))

    add(entity.created_at, 0, "entity_created", name=entity.name, entity_type=entity.entity_type)
    if entity.updated_at and entity.updated_at != entity.created_at:
        add(entity.updated_at, 1, "entity_updated", name=entity.name, entity_type=entity.entity_type)
    for rel in relationships:
        info = {"relationship_id": rel.id, "relationship_type": rel.relationship_type,
                "source_id": rel.source_id, "target_id": rel.target_id, "confidence": rel.confidence,
                "properties": rel.properties}
        add(rel.valid_from or rel.created_at, 2, "relationship_started", **info)
        add(rel.valid_to, 3, "relationship_ended", **info)
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return [e[3] for e in events]


# -- read-only check of raw Cypher ---------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""(?P<comment>//[^\n]*|/\*.*?(?:\*/|\Z))"""
    r"""|(?P<string>'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z))"""
    r"""|(?P<quoted>`(?:[^`]|``)*(?:`|\Z))"""
    r"""|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"""
    r"""|(?P<other>[^\sA-Za-z_'"`/]+|/)""",
    re.DOTALL,
)
WRITE_KEYWORDS = frozenset({
    "CREATE", "MERGE", "DELETE", "DETACH", "SET", "REMOVE", "DROP", "ALTER", "COPY", "LOAD", "INSTALL",
    "UNINSTALL", "ATTACH", "IMPORT", "EXPORT", "CHECKPOINT", "FOREACH", "UPDATE", "USE", "BEGIN", "COMMIT",
    "ROLLBACK", "GRANT", "REVOKE", "DENY", "TRUNCATE", "INSERT", "FREE", "DUMP", "LOCK", "UNLOCK",
    "REGISTER", "STORAGE", "TRIGGER", "STREAM", "START", "STOP", "ANALYZE", "SNAPSHOT", "RECOVER",
})
# Procedures known to only read (Ladybug's catalog functions, Memgraph's introspection).
READ_ONLY_PROCEDURES = frozenset({
    "show_tables", "table_info", "show_connection", "db_version", "show_functions", "show_indexes",
    "show_sequences", "show_warnings", "current_setting",
    "mg.procedures", "mg.functions", "db.labels", "db.relationshiptypes", "db.propertykeys",
    "schema.node_type_properties", "schema.rel_type_properties",
})
_FIRST_WORDS = frozenset({"MATCH", "OPTIONAL", "WITH", "UNWIND", "RETURN", "CALL", "EXPLAIN", "PROFILE"})


def _tokens(query: str) -> list[tuple[str, str]]:
    """(kind, text) pairs; comments dropped, string and backtick contents opaque."""
    out = []
    for m in _TOKEN_RE.finditer(query):
        kind = m.lastgroup
        if kind != "comment":
            out.append((kind, m.group()))
    return out


def split_statements(query: str) -> list[list[tuple[str, str]]]:
    """The tokens of each ``;``-separated statement (a ``;`` inside a string does not split)."""
    statements: list[list[tuple[str, str]]] = [[]]
    for kind, text in _tokens(query):
        if kind == "other" and ";" in text:
            parts = text.split(";")
            for n, part in enumerate(parts):
                if n:
                    statements.append([])
                if part:
                    statements[-1].append(("other", part))
        else:
            statements[-1].append((kind, text))
    return [s for s in statements if s]


def _statement_reads_only(tokens: list[tuple[str, str]]) -> bool:
    words = [(n, text) for n, (kind, text) in enumerate(tokens) if kind == "word"]
    if not words or words[0][1].upper() not in _FIRST_WORDS:
        return False
    for n, text in words:
        prev = tokens[n - 1][1] if n else ""
        if prev.endswith((".", "$")):  # a property key or a parameter name, not a clause
            continue
        upper = text.upper()
        if upper in WRITE_KEYWORDS:
            return False
        if upper == "CALL":
            name = _procedure_name(tokens, n + 1)
            if name is None or name.lower() not in READ_ONLY_PROCEDURES:
                return False  # unknown procedures may write: only the known readers pass
    return True


def _procedure_name(tokens: list[tuple[str, str]], start: int) -> str | None:
    parts, n = [], start
    while n < len(tokens):
        kind, text = tokens[n]
        if kind == "word":
            parts.append(text)
        elif kind == "quoted":
            parts.append(text[1:-1])
        elif text == ".":
            parts.append(".")
        else:
            break
        n += 1
    name = "".join(parts)
    return name or None  # "CALL {" (a subquery) has no name: refused, it may hold writes


def is_read_only(query: str) -> bool:
    """Whether raw Cypher only reads: every statement starts like a query and holds no
    writing clause or unknown procedure call. Conservative: when unsure, ``False``."""
    if not isinstance(query, str):
        return False
    if _unterminated(query):
        return False  # the engine would read it differently from this lexer: refuse
    statements = split_statements(query)
    return bool(statements) and all(_statement_reads_only(s) for s in statements)


def _unterminated(query: str) -> bool:
    for m in _TOKEN_RE.finditer(query):
        text, kind = m.group(), m.lastgroup
        if kind == "comment" and text.startswith("/*") and (len(text) < 4 or not text.endswith("*/")):
            return True
        if kind in ("string", "quoted") and (len(text) < 2 or text[-1] != text[0]
                                             or (kind == "string" and _escaped_end(text))):
            return True
    return False


def _escaped_end(text: str) -> bool:
    """Whether a string token's last quote is escaped (so the string never closed)."""
    body = text[1:-1]
    return (len(body) - len(body.rstrip("\\"))) % 2 == 1


def check_query(query: Any) -> str:
    """One non-empty statement (a trailing ``;`` is fine)."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequestError("must be a non-empty string", "query")
    if len(split_statements(query)) > 1:
        raise InvalidRequestError("holds several statements; send one per call", "query")
    return query


def check_parameters(parameters: Any) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict) or any(not isinstance(k, str) for k in parameters):
        raise InvalidRequestError("must be an object with string keys", "parameters")
    return parameters


def jsonable(value: Any) -> Any:
    """Result values as JSON-friendly Python (datetimes and dataclasses pass through)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (Entity, Relationship)):
        return asdict(value)
    return value


# -- clients over a blocking driver ----------------------------------------------------------

class SyncGraphClient(GraphClient):
    """``execute`` and ``execute_in_transaction`` for clients over a blocking driver:
    inputs checked here, the work done on ``thread`` (which owns the driver's
    connection) by the subclass's ``_execute_sync`` and ``_transaction_sync``."""

    def __init__(self, thread: OwnerThread) -> None:
        self._thread = thread

    async def execute(self, query: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return await self._thread.run(self._execute_sync, check_query(query), check_parameters(parameters))

    async def execute_in_transaction(
        self, statements: list[tuple[str, dict[str, Any] | None]]
    ) -> list[list[dict[str, Any]]]:
        if not isinstance(statements, (list, tuple)):
            raise InvalidRequestError("must be a list of (query, parameters) pairs", "statements")
        checked = []
        for n, item in enumerate(statements):
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise InvalidRequestError("must be a (query, parameters) pair", f"statements[{n}]")
            checked.append((check_query(item[0]), check_parameters(item[1])))
        return await self._thread.run(self._transaction_sync, checked)

    def supports_transactions(self) -> bool:
        return True


# -- the engine, on any GraphClient that speaks this Cypher ---------------------------------

class CypherGraphEngine(GraphEngine):
    """GRAPH_ENGINE over a `GraphClient`; subclasses give the client and the few
    dialect-specific pieces (schema, breadth-first traversal syntax)."""

    config_model: type[GraphEngineConfig] = GraphEngineConfig
    engine_name = "cypher"

    def __init__(self) -> None:
        self.cfg: GraphEngineConfig | None = None
        self.client: Any = None
        self.read_only = False
        # Writes that read before they write (created_at kept on upsert) are serialized.
        self._write_lock = asyncio.Lock()

    # -- dialect hooks --
    @abstractmethod
    def _make_client(self) -> Any:
        """A GraphClient (not yet initialized) for ``self.cfg``."""

    @abstractmethod
    def _client_config(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The part of the engine's config its client takes."""

    @abstractmethod
    async def _ensure_schema(self) -> None: ...

    @abstractmethod
    def _reach_pattern(self, depth: int, typed: bool) -> str:
        """A relationship pattern reaching each node once by a shortest walk of 1..depth
        hops (``$rtype`` filters every hop when ``typed``); terminates on cycles."""

    @abstractmethod
    def _path_query(self, depth: int) -> str:
        """Cypher returning ``node_ids`` and ``rel_ids`` (lists) of one shortest path
        from ``$source`` to ``$target`` within ``depth`` hops."""

    # -- lifecycle --
    async def initialize(self, config: dict[str, Any]) -> None:
        self.cfg = parse_provider_config(self.config_model, config)
        self.read_only = bool(getattr(self.cfg, "read_only", False))
        client = self._make_client()
        await client.initialize(self._client_config(config or {}))
        self.client = client
        if not self.read_only:
            await self._ensure_schema()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def _q(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if self.client is None:
            raise ProviderCallError(f"{self.engine_name} graph engine is not initialized")
        return await self.client.execute(query, params or {})

    def _writable(self) -> None:
        if self.read_only:
            raise InvalidRequestError("this graph is opened read-only (config.read_only)", "config.read_only")

    # -- entities --
    async def create_entity(self, entity: Entity) -> str:
        return (await self.create_entities([entity]))[0]

    async def create_entities(self, entities: list[Entity]) -> list[str]:
        self._writable()
        now = now_utc()
        items = check_batch(entities, "entities", self.cfg.max_batch_size)
        rows = unique_rows([entity_row(e, f"entities[{n}]", now) for n, e in enumerate(items)], "entities")
        if not rows:
            return []
        # Upsert by id as CREATE for new ids plus MATCH .. SET for known ones (which keep
        # created_at), not MERGE: on Ladybug 0.22 a one-row MERGE into a 10k-entity table
        # took 70-90 ms, CREATE and MATCH .. SET under 1 ms each (measured).
        fields = "e.name = row.name, e.entity_type = row.entity_type, e.properties = row.properties, " \
                 "e.updated_at = row.updated_at, e.confidence = row.confidence"
        async with self._write_lock:
            known = set(await self._existing_ids({r["id"] for r in rows}))
            statements = []
            if known:
                statements.append((f"UNWIND $rows AS row MATCH (e:Entity {{id: row.id}}) SET {fields}",
                                   {"rows": [r for r in rows if r["id"] in known]}))
            fresh = [r for r in rows if r["id"] not in known]
            if fresh:
                statements.append((
                    "UNWIND $rows AS row CREATE (e:Entity {id: row.id, name: row.name, entity_type: row.entity_type, "
                    "properties: row.properties, created_at: row.created_at, updated_at: row.updated_at, "
                    "confidence: row.confidence})", {"rows": fresh}))
            await self.client.execute_in_transaction(statements)
        return [r["id"] for r in rows]

    async def get_entity(self, entity_id: str) -> Entity | None:
        rows = await self._q(f"MATCH (e:Entity) WHERE e.id = $id RETURN {entity_columns()}",
                             {"id": check_id(entity_id, "entity_id")})
        return row_to_entity(rows[0]) if rows else None

    async def _entities_by_id(self, ids: list[str]) -> dict[str, Entity]:
        if not ids:
            return {}
        rows = await self._q(f"UNWIND $ids AS i MATCH (e:Entity {{id: i}}) RETURN {entity_columns()}", {"ids": ids})
        return {r["id"]: row_to_entity(r) for r in rows}

    async def update_entity(self, entity: Entity) -> bool:
        self._writable()
        entity = as_entity(entity, "entity")
        check_id(entity.id, "entity.id")  # no fresh id here: an update names its entity
        row = entity_row(entity, "entity", now_utc())
        rows = await self._q(
            "MATCH (e:Entity) WHERE e.id = $id SET e.name = $name, e.entity_type = $entity_type, "
            "e.properties = $properties, e.updated_at = $updated_at, e.confidence = $confidence RETURN e.id AS id",
            {k: row[k] for k in ("id", "name", "entity_type", "properties", "updated_at", "confidence")})
        return bool(rows)

    async def delete_entity(self, entity_id: str) -> bool:
        self._writable()
        entity_id = check_id(entity_id, "entity_id")
        async with self._write_lock:
            if not await self.entity_exists(entity_id):
                return False
            incident = await self._q("MATCH (e:Entity {id: $id})-[r:RELATES]-(:Entity) RETURN DISTINCT r.id AS id",
                                     {"id": entity_id})
            await self.client.execute_in_transaction(
                [*self._relationship_key_deletes([r["id"] for r in incident]),
                 ("MATCH (e:Entity) WHERE e.id = $id DETACH DELETE e", {"id": entity_id})])
        return True

    async def entity_exists(self, entity_id: str) -> bool:
        rows = await self._q("MATCH (e:Entity) WHERE e.id = $id RETURN e.id AS id",
                             {"id": check_id(entity_id, "entity_id")})
        return bool(rows)

    async def find_entities(self, entity_type: str | None = None, properties: dict[str, Any] | None = None,
                            limit: int = 100) -> list[Entity]:
        limit = check_limit(limit, self.cfg.max_limit)
        wanted = check_properties(properties, "properties")
        where, params = [], {}
        if entity_type is not None:
            where.append("e.entity_type = $entity_type")
            params["entity_type"] = check_type(entity_type, "entity_type")
        for n, fragment in enumerate(property_fragments(wanted)):
            where.append(f"e.properties CONTAINS $frag{n}")
            params[f"frag{n}"] = fragment
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        query = f"MATCH (e:Entity) {clause}RETURN {entity_columns()} ORDER BY id SKIP $skip LIMIT $page"
        # The CONTAINS prefilter may let through near misses ('"k":1' inside '"k":12'),
        # so pages are read until `limit` exact matches are found.
        out, skip, page = [], 0, max(limit, 256)
        while len(out) < limit:
            rows = await self._q(query, {**params, "skip": skip, "page": page})
            out.extend(e for e in map(row_to_entity, rows) if properties_match(e, wanted))
            if len(rows) < page:
                break
            skip += page
        return out[:limit]

    # -- relationships --
    async def create_relationship(self, relationship: Relationship) -> str:
        try:
            return (await self.create_relationships([relationship]))[0]
        except InvalidRequestError as exc:  # name the field of the single call, not of a batch
            if exc.field and exc.field.startswith("relationships[0]"):
                raise InvalidRequestError(str(exc).split(": ", 1)[1],
                                          "relationship" + exc.field[len("relationships[0]"):]) from None
            raise

    async def create_relationships(self, relationships: list[Relationship]) -> list[str]:
        self._writable()
        now = now_utc()
        items = check_batch(relationships, "relationships", self.cfg.max_batch_size)
        rows = unique_rows([relationship_row(r, f"relationships[{n}]", now) for n, r in enumerate(items)],
                           "relationships")
        if not rows:
            return []
        async with self._write_lock:
            present = set(await self._existing_ids({r["source_id"] for r in rows} | {r["target_id"] for r in rows}))
            for n, row in enumerate(rows):
                for end in ("source_id", "target_id"):
                    if row[end] not in present:
                        raise InvalidRequestError(f"no entity has id {row[end]!r}", f"relationships[{n}].{end}")
            # Upsert by id: an existing relationship keeps its created_at and is replaced
            # (its endpoints may change, which an edge cannot do in place).
            ids = [r["id"] for r in rows]
            match, params = await self._match_relationships(ids)
            old = await self._q(f"{match} RETURN r.id AS id, r.created_at AS created_at", params)
            created = {o["id"]: o["created_at"] for o in old}
            for row in rows:
                row["created_at"] = created.get(row["id"]) or row["created_at"]
            statements = [(f"{match} DELETE r", params)] if created else []
            statements.append((
                # Two MATCH clauses, not one "MATCH (a {..}), (b {..})": Ladybug 0.22 planned
                # the comma form as a join over all entities (3 s against 22 ms for 1,000
                # rows among 30k entities, measured).
                "UNWIND $rows AS row MATCH (a:Entity {id: row.source_id}) MATCH (b:Entity {id: row.target_id}) "
                "CREATE (a)-[r:RELATES {id: row.id, type: row.type, properties: row.properties, "
                "created_at: row.created_at, updated_at: row.updated_at, confidence: row.confidence, "
                "valid_from: row.valid_from, valid_to: row.valid_to}]->(b)", {"rows": rows}))
            statements += self._relationship_key_writes(rows)
            await self.client.execute_in_transaction(statements)
        return ids

    async def _existing_ids(self, ids: set[str]) -> list[str]:
        # One primary-key lookup per id: "WHERE e.id IN $ids" scanned the table in
        # Ladybug 0.22 (118 ms against 3.7 ms for 2,000 ids among 30k entities, measured).
        rows = await self._q("UNWIND $ids AS i MATCH (e:Entity {id: i}) RETURN e.id AS id", {"ids": sorted(ids)})
        return [r["id"] for r in rows]

    # Relationship ids are looked up through two hooks, because an engine may index
    # edge properties (Memgraph) or not (Ladybug, which keeps a key table instead).
    async def _match_relationships(self, ids: list[str]) -> tuple[str, dict[str, Any]]:
        """A MATCH clause binding ``(a)-[r]->(b)`` to the relationships with these ids,
        and its parameters."""
        return "MATCH (a:Entity)-[r:RELATES]->(b:Entity) WHERE r.id IN $ids", {"ids": ids}

    def _relationship_key_writes(self, rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """Statements that record (or replace) the keys of relationships being written,
        run in the same transaction."""
        return []

    def _relationship_key_deletes(self, ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """Statements that forget the keys of relationships being deleted."""
        return []

    async def _after_admin_write(self, query: str) -> None:
        """Called after a write through ``execute_cypher``, which bypasses the hooks above."""

    async def _relationship_rows(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        match, params = await self._match_relationships(ids)
        return await self._q(f"{match} RETURN {rel_columns()}", params)

    async def get_relationship(self, relationship_id: str) -> Relationship | None:
        rows = await self._relationship_rows([check_id(relationship_id, "relationship_id")])
        return row_to_relationship(rows[0]) if rows else None

    async def _relationships_by_id(self, ids: list[str]) -> dict[str, Relationship]:
        return {r["id"]: row_to_relationship(r) for r in await self._relationship_rows(ids)}

    async def delete_relationship(self, relationship_id: str) -> bool:
        self._writable()
        relationship_id = check_id(relationship_id, "relationship_id")
        async with self._write_lock:
            match, params = await self._match_relationships([relationship_id])
            if not await self._q(f"{match} RETURN r.id AS id", params):
                return False
            await self.client.execute_in_transaction(
                [(f"{match} DELETE r", params), *self._relationship_key_deletes([relationship_id])])
        return True

    async def relationship_exists(self, relationship_id: str) -> bool:
        return bool(await self._relationship_rows([check_id(relationship_id, "relationship_id")]))

    async def get_entity_relationships(self, entity_id: str, relationship_type: str | None = None,
                                       direction: str = "both") -> list[Relationship]:
        params = {"id": check_id(entity_id, "entity_id")}
        direction = check_direction(direction)
        where = ""
        if relationship_type is not None:
            where = " WHERE r.type = $rtype"
            params["rtype"] = check_type(relationship_type, "relationship_type")
        # The entity is anchored by its primary key in the pattern, one query per
        # direction: "WHERE a.id = $id OR b.id = $id" scanned every edge in
        # Ladybug (18 ms against 0.5 ms at 40k edges, measured).
        patterns = {"outgoing": ["(a:Entity {id: $id})-[r:RELATES]->(b:Entity)"],
                    "incoming": ["(a:Entity)-[r:RELATES]->(b:Entity {id: $id})"]}
        patterns["both"] = patterns["outgoing"] + patterns["incoming"]
        found: dict[str, Relationship] = {}
        for pattern in patterns[direction]:
            for row in await self._q(f"MATCH {pattern}{where} RETURN {rel_columns()}", params):
                found.setdefault(row["id"], row_to_relationship(row))  # a self-loop matches both ways
        return sorted(found.values(), key=lambda r: (r.created_at or _EPOCH, r.id))

    # -- traversal --
    async def get_connected_entities(self, entity_id: str, relationship_type: str | None = None,
                                     max_depth: int = 1) -> list[Entity]:
        params = {"id": check_id(entity_id, "entity_id")}
        depth = check_depth(max_depth, self.cfg.max_depth)
        if relationship_type is not None:
            params["rtype"] = check_type(relationship_type, "relationship_type")
        pattern = self._reach_pattern(depth, relationship_type is not None)
        rows = await self._q(f"MATCH (s:Entity {{id: $id}}){pattern}(e:Entity) WHERE e.id <> $id "
                             f"RETURN DISTINCT {entity_columns()} ORDER BY id", params)
        seen, out = set(), []
        for row in rows:  # DISTINCT on whole rows; ids are what must be unique
            if row["id"] not in seen:
                seen.add(row["id"])
                out.append(row_to_entity(row))
        return out

    async def find_path(self, source_id: str, target_id: str, max_depth: int = 3) -> GraphSearchResult | None:
        source = check_id(source_id, "source_id")
        target = check_id(target_id, "target_id")
        depth = check_depth(max_depth, self.cfg.max_depth)
        if source == target:
            entity = await self.get_entity(source)
            return None if entity is None else GraphSearchResult(
                entities=[entity], metadata={"length": 0, "source_id": source, "target_id": target, "directions": []})
        rows = await self._q(self._path_query(depth), {"source": source, "target": target})
        if not rows:
            return None
        node_ids, rel_ids = list(rows[0]["node_ids"]), list(rows[0]["rel_ids"])
        entities = await self._entities_by_id(node_ids)
        relationships = await self._relationships_by_id(rel_ids)
        return assemble_path(node_ids, rel_ids, entities, relationships, source, target)

    # -- raw Cypher --
    async def execute_cypher(self, query: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        query = check_query(query)
        if is_read_only(query):
            return await self._q(query, check_parameters(parameters))
        self._writable()
        async with self._write_lock:
            try:
                return await self._q(query, check_parameters(parameters))
            finally:  # a failed statement may still have written (outside a transaction)
                await self._after_admin_write(query)

    # -- time --
    async def get_entity_timeline(self, entity_id: str, start_time: datetime | None = None,
                                  end_time: datetime | None = None) -> list[dict[str, Any]]:
        start, end = to_utc(start_time, "start_time"), to_utc(end_time, "end_time")
        if start and end and end < start:
            raise InvalidRequestError("is before start_time", "end_time")
        entity = await self.get_entity(entity_id)
        if entity is None:
            return []
        return build_timeline(entity, await self.get_entity_relationships(entity_id), start, end)

    # -- health --
    async def health_check(self) -> dict[str, Any]:
        try:
            if self.client is None:
                return {"status": "unhealthy", "engine": self.engine_name, "error": "not initialized"}
            client = await self.client.health_check()
            return {**client, "engine": self.engine_name, "read_only": self.read_only}
        except Exception as exc:  # never raises, by contract
            return {"status": "unhealthy", "engine": self.engine_name, "error": type(exc).__name__}

    async def get_stats(self) -> dict[str, Any]:
        ents = await self._q("MATCH (e:Entity) RETURN e.entity_type AS t, count(*) AS c")
        rels = await self._q("MATCH (a:Entity)-[r:RELATES]->(b:Entity) RETURN r.type AS t, count(*) AS c")
        by_e = {str(r["t"]): int(r["c"]) for r in ents}
        by_r = {str(r["t"]): int(r["c"]) for r in rels}
        return {"engine": self.engine_name, "entities": sum(by_e.values()), "relationships": sum(by_r.values()),
                "entities_by_type": by_e, "relationships_by_type": by_r}
