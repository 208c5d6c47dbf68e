"""The graph engine every Cypher database here shares (`CypherGraphEngine`): a
subclass gives its client and the few dialect-specific pieces.

Inputs are checked (`providers.graph.checks`) and turned into parameter rows
(`providers.graph.rows`) before any database work, so a bad batch writes nothing.

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
from abc import abstractmethod
from datetime import datetime, timezone
from typing import Any

from pydantic import Field

from providers.checks import check_id
from providers.config_base import ProviderConfig, parse_provider_config
from providers.errors import InvalidRequestError, ProviderCallError
from providers.graph.checks import check_batch, check_depth, check_direction, check_limit, check_properties, check_type
from providers.graph.cypher_lexer import check_parameters, check_query, is_read_only
from providers.graph.rows import (
    as_entity,
    assemble_path,
    entity_columns,
    entity_row,
    properties_match,
    property_fragments,
    rel_columns,
    relationship_row,
    row_to_entity,
    row_to_relationship,
    unique_rows,
)
from providers.graph.times import build_timeline, now_utc, to_utc
from providers.interfaces.graph_engines import Entity, GraphEngine, GraphSearchResult, Relationship

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


class GraphEngineConfig(ProviderConfig):
    """Keys every graph engine understands (each engine adds its own)."""

    max_depth: int = Field(5, ge=1, le=20, description="Largest depth any traversal accepts.")
    max_batch_size: int = Field(10_000, ge=1, le=1_000_000, description="Items per batch call.")
    max_limit: int = Field(10_000, ge=1, le=1_000_000, description="Largest limit of find_entities.")


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
