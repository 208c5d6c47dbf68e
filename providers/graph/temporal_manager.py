"""A temporal graph manager over any graph engine, with no LLM required.

It speaks only the `GraphEngine` interface, reached through the registry
(``self.registry``, see `providers.registry.dependencies`), so it works on
every engine (Ladybug, Memgraph) and its engine calls get the router's
deadlines, fallbacks and breakers.

Episodes. ``add_episode(content, timestamp, entities, relationships, source)``
takes what the caller extracted (or, with an ``extractor`` configured, asks an
OpenAI-compatible chat model to extract it). Entities are merged by name and
type: the id is derived from the case-folded name and the type, so "Alice"
mentioned in two episodes is one node whose properties accumulate. The
episode itself is a node (``entity_type: "Episode"``) holding the content,
source and time, linked to what it mentions (``MENTIONS``), and it records
what it changed: that record is the change log ``get_changes`` reads.

Time. Relationships carry ``valid_from`` (the episode's timestamp unless the
caller says otherwise) and ``valid_to`` (open). A new fact whose type is
listed in ``exclusive_relationships`` (``WORKS_AT``: one employer at a time)
ends the source's current facts of that type towards other targets at the
new fact's ``valid_from``; they are kept, not deleted, so ``as_of`` reads
show the graph as it was.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from pydantic import Field

from providers.config_base import NAME_PATTERN, ProviderConfig, parse_provider_config
from providers.errors import InvalidRequestError
from providers.graph.times import to_utc
from providers.interfaces.graph_engines import Entity, GraphSearchResult, Relationship
from providers.interfaces.graph_managers import EpisodeResult, GraphManager
from providers.registry.dependencies import resolver_of
from providers.types import ProviderType

EPISODE = "Episode"
MENTIONS = "MENTIONS"
_NAMESPACE = uuid.UUID("5f2b5c1e-7d8a-4b36-9a51-0c1f6e3d2a90")
_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


class TemporalManagerConfig(ProviderConfig):
    graph_engine: str = Field(..., pattern=NAME_PATTERN, description="The graph engine provider it manages.")
    exclusive_relationships: list[str] = Field(
        default_factory=list,
        description="Relationship types a source holds towards one target at a time (WORKS_AT): "
        "a new one ends the current one instead of deleting it.")
    max_depth: int = Field(3, ge=1, le=10, description="Deepest neighbourhood a read may ask for.")
    # Each entity and relationship of an episode costs several engine calls
    # (merge by name, end contradicted facts): the episode's size is bounded.
    max_episode_items: int = Field(1000, ge=1, le=100_000,
                                   description="Most entities, and most relationships, one episode may carry.")
    scan_limit: int = Field(10_000, ge=1, le=1_000_000,
                            description="Most entities read by whole-graph operations (search, as_of, changes).")
    extractor: dict[str, Any] | None = Field(
        None, description="Optional OpenAI-compatible chat endpoint that extracts entities and relationships "
        "from raw text: {base_url, model, api_key?, timeout_s?}.")


def utc(value: datetime | str | None, where: str = "timestamp") -> datetime | None:
    """An aware UTC datetime (naive means UTC); ISO strings accepted."""
    return to_utc(value, where)


def entity_id_for(name: str, entity_type: str) -> str:
    """Merging by name and type: the same name and type always give the same id."""
    key = f"{entity_type.strip().casefold()}\x00{' '.join(name.split()).casefold()}"
    return f"{entity_type.strip()}:{uuid.uuid5(_NAMESPACE, key).hex[:16]}"


def valid_at(rel: Relationship, when: datetime) -> bool:
    start = utc(rel.valid_from) or utc(rel.created_at)
    end = utc(rel.valid_to)
    return (start is None or start <= when) and (end is None or when < end)


class TemporalGraphManager(GraphManager):
    def __init__(self) -> None:
        self.registry: Any = None  # set by the host before initialize
        self.cfg: TemporalManagerConfig | None = None
        self._engine: Any = None

    async def initialize(self, config: dict[str, Any]) -> None:
        self.cfg = parse_provider_config(TemporalManagerConfig, config)
        for i, t in enumerate(self.cfg.exclusive_relationships):
            if not _TYPE_RE.fullmatch(t):
                raise InvalidRequestError(f"{t!r} is not a relationship type name", f"config.exclusive_relationships[{i}]")
        resolver_of(self, f"the graph engine {self.cfg.graph_engine!r}")  # fail now without a registry
        self._engine = None  # looked up on first use: the engine may start after the manager

    async def engine(self) -> Any:
        if self._engine is None:
            registry = resolver_of(self, f"the graph engine {self.cfg.graph_engine!r}")
            self._engine = await registry.get_provider_with_fallback(ProviderType.GRAPH_ENGINE, self.cfg.graph_engine)
        return self._engine

    # -- episodes ---------------------------------------------------------------------------
    async def add_episode(self, content: str, timestamp: datetime, entities: list[Entity] | None = None,
                          relationships: list[Relationship] | None = None,
                          source: str | None = None) -> EpisodeResult:
        if not isinstance(content, str) or not content.strip():
            raise InvalidRequestError("must be a non-empty string", "content")
        when = utc(timestamp)
        if entities is None and relationships is None and self.cfg.extractor:
            entities, relationships = await self._extract(content)
        entities, relationships = list(entities or []), list(relationships or [])
        for field, items in (("entities", entities), ("relationships", relationships)):
            if len(items) > self.cfg.max_episode_items:
                raise InvalidRequestError(f"has {len(items)} items; the limit is {self.cfg.max_episode_items} "
                                          "(config.max_episode_items)", field)
        engine = await self.engine()

        merged: dict[str, str] = {}  # the caller's id or name -> merged id
        entity_ids = []
        for i, raw in enumerate(entities):
            ent = _as_entity(raw, f"entities[{i}]")
            eid = entity_id_for(ent.name, ent.entity_type)
            existing = await engine.get_entity(eid)
            props = {**(existing.properties if existing else {}), **ent.properties}
            fresh = Entity(id=eid, name=ent.name, entity_type=ent.entity_type, properties=props,
                           created_at=existing.created_at if existing else when, updated_at=when,
                           confidence=max(ent.confidence, existing.confidence if existing else 0.0))
            if existing:
                await engine.update_entity(fresh)
            else:
                await engine.create_entity(fresh)
            for alias in {ent.id, ent.name}:
                if alias:
                    merged[alias] = eid
            entity_ids.append(eid)

        episode_id = f"{EPISODE}:{uuid.uuid4().hex}"
        rel_ids, ended = [], []
        for i, raw in enumerate(relationships):
            rel = _as_relationship(raw, f"relationships[{i}]")
            src = merged.get(rel.source_id) or (rel.source_id if await engine.entity_exists(rel.source_id) else None)
            dst = merged.get(rel.target_id) or (rel.target_id if await engine.entity_exists(rel.target_id) else None)
            if src is None or dst is None:
                missing = "source_id" if src is None else "target_id"
                raise InvalidRequestError(f"names no entity of this episode nor of the graph: "
                                          f"{getattr(rel, missing)!r}", f"relationships[{i}].{missing}")
            start = utc(rel.valid_from) or when
            if rel.relationship_type in self.cfg.exclusive_relationships:
                ended += await self._end_contradicted(engine, src, dst, rel.relationship_type, start)
            fact = replace(rel, id=rel.id or f"rel:{uuid.uuid4().hex}", source_id=src, target_id=dst,
                           created_at=when, updated_at=when, valid_from=start, valid_to=utc(rel.valid_to),
                           properties={**rel.properties, "episode_id": episode_id,
                                       **({"source": source} if source else {})})
            rel_ids.append(await engine.create_relationship(fact))

        # The episode node: the content, and the change log get_changes reads.
        await engine.create_entity(Entity(
            id=episode_id, name=content.strip()[:80], entity_type=EPISODE, created_at=when, updated_at=when,
            properties={"content": content, "source": source, "timestamp": when.isoformat(),
                        "entity_ids": entity_ids, "relationship_ids": rel_ids, "ended_ids": ended}))
        for eid in dict.fromkeys(entity_ids):
            await engine.create_relationship(Relationship(
                id=f"rel:{uuid.uuid4().hex}", source_id=episode_id, target_id=eid, relationship_type=MENTIONS,
                created_at=when, valid_from=when, properties={"episode_id": episode_id}))
        return EpisodeResult(episode_id=episode_id, entity_ids=entity_ids, relationship_ids=rel_ids,
                             invalidated_relationship_ids=ended)

    async def _end_contradicted(self, engine: Any, src: str, dst: str, rtype: str, at: datetime) -> list[str]:
        ended = []
        for old in await engine.get_entity_relationships(src, rtype, "outgoing"):
            if old.target_id != dst and valid_at(old, at):
                await self._set_valid_to(engine, old, at)
                ended.append(old.id)
        return ended

    async def _set_valid_to(self, engine: Any, rel: Relationship, at: datetime) -> None:
        # The engine interface has no relationship update: replace it, same id, ended.
        await engine.delete_relationship(rel.id)
        await engine.create_relationship(replace(rel, valid_to=at, updated_at=datetime.now(timezone.utc)))

    async def invalidate_relationship(self, relationship_id: str, valid_to: datetime) -> bool:
        engine = await self.engine()
        rel = await engine.get_relationship(relationship_id)
        if rel is None:
            return False
        await self._set_valid_to(engine, rel, utc(valid_to))
        return True

    # -- reading in time -------------------------------------------------------------------------
    def _depth(self, depth: Any) -> int:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise InvalidRequestError("must be a positive integer", "max_depth")
        if depth > self.cfg.max_depth:
            raise InvalidRequestError(f"is {depth}; the limit is {self.cfg.max_depth} (config.max_depth)", "max_depth")
        return depth

    async def get_entity_relationships(self, entity_id: str, relationship_type: str | None = None,
                                       direction: str = "both", as_of: datetime | None = None) -> list[Relationship]:
        engine = await self.engine()
        when = utc(as_of) or datetime.now(timezone.utc)
        rels = await engine.get_entity_relationships(entity_id, relationship_type, direction)
        return [r for r in rels if r.relationship_type != MENTIONS and valid_at(r, when)]

    async def get_connected_entities(self, entity_id: str, relationship_type: str | None = None,
                                     max_depth: int = 1, as_of: datetime | None = None) -> GraphSearchResult:
        depth = self._depth(max_depth)
        engine = await self.engine()
        seen, frontier, rels = {entity_id}, [entity_id], {}
        for _ in range(depth):
            nxt = []
            for eid in frontier:
                for r in await self.get_entity_relationships(eid, relationship_type, "both", as_of):
                    rels[r.id] = r
                    other = r.target_id if r.source_id == eid else r.source_id
                    if other not in seen:
                        seen.add(other)
                        nxt.append(other)
            frontier = nxt
        found = [e for e in [await engine.get_entity(i) for i in seen - {entity_id}]
                 if e is not None and e.entity_type != EPISODE]
        return GraphSearchResult(entities=found, relationships=list(rels.values()),
                                 metadata={"start": entity_id, "max_depth": depth,
                                           "as_of": (utc(as_of) or datetime.now(timezone.utc)).isoformat()})

    async def get_graph_as_of(self, as_of: datetime, entity_id: str | None = None,
                              max_depth: int = 1) -> GraphSearchResult:
        when = utc(as_of)
        engine = await self.engine()
        if entity_id is not None:
            start = await engine.get_entity(entity_id)
            result = await self.get_connected_entities(entity_id, None, max_depth, when)
            if start is not None and _existed(start, when):
                result.entities.insert(0, start)
            result.entities = [e for e in result.entities if _existed(e, when)]
            return result
        entities = [e for e in await engine.find_entities(None, None, self.cfg.scan_limit)
                    if e.entity_type != EPISODE and _existed(e, when)]
        rels: dict[str, Relationship] = {}
        for e in entities:
            for r in await self.get_entity_relationships(e.id, None, "outgoing", when):
                rels[r.id] = r
        return GraphSearchResult(entities=entities, relationships=list(rels.values()),
                                 metadata={"as_of": when.isoformat(), "truncated": len(entities) >= self.cfg.scan_limit})

    async def get_entity_timeline(self, entity_id: str, start_time: datetime | None = None,
                                  end_time: datetime | None = None) -> list[dict[str, Any]]:
        engine = await self.engine()
        lo, hi = utc(start_time), utc(end_time)
        events = []
        for r in await engine.get_entity_relationships(entity_id, None, "both"):
            if r.relationship_type == MENTIONS:
                episode = await engine.get_entity(r.source_id)
                if episode is not None:
                    events.append({"time": utc(episode.created_at), "event": "mentioned", "episode_id": episode.id,
                                   "content": episode.properties.get("content"),
                                   "source": episode.properties.get("source")})
                continue
            other = r.target_id if r.source_id == entity_id else r.source_id
            events.append({"time": utc(r.valid_from) or utc(r.created_at), "event": "fact_started",
                           "relationship_id": r.id, "type": r.relationship_type, "other_id": other})
            if r.valid_to is not None:
                events.append({"time": utc(r.valid_to), "event": "fact_ended", "relationship_id": r.id,
                               "type": r.relationship_type, "other_id": other})
        events = [e for e in events if e["time"] is not None and (lo is None or e["time"] >= lo)
                  and (hi is None or e["time"] <= hi)]
        events.sort(key=lambda e: (e["time"], e["event"]))
        return [{**e, "time": e["time"].isoformat()} for e in events]

    async def get_changes(self, start_time: datetime, end_time: datetime) -> dict[str, Any]:
        lo, hi = utc(start_time), utc(end_time)
        engine = await self.engine()
        episodes = [e for e in await engine.find_entities(EPISODE, None, self.cfg.scan_limit)
                    if lo <= utc(e.properties.get("timestamp") or e.created_at) <= hi]
        episodes.sort(key=lambda e: e.properties.get("timestamp") or "")
        added, started, ended = [], [], []
        for ep in episodes:
            added += ep.properties.get("entity_ids") or []
            started += ep.properties.get("relationship_ids") or []
            ended += ep.properties.get("ended_ids") or []
        return {"start_time": lo.isoformat(), "end_time": hi.isoformat(),
                "episodes": [e.id for e in episodes], "entities": list(dict.fromkeys(added)),
                "relationships_started": started, "relationships_ended": ended}

    async def search(self, query: str, entity_type: str | None = None, as_of: datetime | None = None,
                     limit: int = 10) -> list[GraphSearchResult]:
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequestError("must be a non-empty string", "query")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidRequestError("must be an integer from 1 to 1000", "limit")
        engine = await self.engine()
        terms = set(query.casefold().split())
        scored = []
        for e in await engine.find_entities(entity_type, None, self.cfg.scan_limit):
            if e.entity_type == EPISODE:
                continue
            name = e.name.casefold()
            score = 1.0 if name == query.casefold().strip() else (
                0.8 if query.casefold().strip() in name else len(terms & set(name.split())) / max(len(terms), 1) * 0.6)
            if score > 0:
                scored.append((score, e))
        scored.sort(key=lambda p: (-p[0], p[1].name))
        out = []
        for score, e in scored[:limit]:
            facts = await self.get_entity_relationships(e.id, None, "both", as_of)
            out.append(GraphSearchResult(entities=[e], relationships=facts, score=score))
        return out

    # -- health and stats ---------------------------------------------------------------------------
    async def health_check(self) -> dict[str, Any]:
        """Its own state only: the engine has its own health check (see the memory tools for why)."""
        if self.cfg is None:
            return {"status": "unhealthy", "error": "not initialized"}
        return {"status": "healthy", "graph_engine": self.cfg.graph_engine,
                "extractor": bool(self.cfg.extractor)}

    async def get_stats(self) -> dict[str, Any]:
        engine = await self.engine()
        stats = await engine.get_stats()
        episodes = await engine.find_entities(EPISODE, None, self.cfg.scan_limit)
        ended = sum(len(e.properties.get("ended_ids") or []) for e in episodes)
        return {"engine": stats, "episodes": len(episodes), "invalidated_facts": ended}

    # -- optional extraction -------------------------------------------------------------------------
    async def _extract(self, content: str) -> tuple[list[Entity], list[Relationship]]:
        from providers.graph.extractor import extract

        return await extract(self.cfg.extractor, content)


def _existed(entity: Entity, when: datetime) -> bool:
    created = utc(entity.created_at)
    return created is None or created <= when


def _as_entity(raw: Any, where: str) -> Entity:
    if isinstance(raw, dict):
        unknown = set(raw) - {"id", "name", "entity_type", "properties", "confidence"}
        if unknown:
            raise InvalidRequestError(f"unknown field(s) {sorted(unknown)}", where)
        raw = Entity(id=raw.get("id") or "", name=raw.get("name"), entity_type=raw.get("entity_type") or "Thing",
                     properties=raw.get("properties") or {}, confidence=raw.get("confidence", 1.0))
    if not isinstance(raw, Entity):
        raise InvalidRequestError(f"must be an entity object, got {type(raw).__name__}", where)
    if not isinstance(raw.name, str) or not raw.name.strip():
        raise InvalidRequestError("must be a non-empty string", f"{where}.name")
    if not isinstance(raw.entity_type, str) or not _TYPE_RE.fullmatch(raw.entity_type) or raw.entity_type == EPISODE:
        raise InvalidRequestError("must be a type name (letters, digits, '_'; not 'Episode')", f"{where}.entity_type")
    if not isinstance(raw.properties, dict):
        raise InvalidRequestError("must be an object", f"{where}.properties")
    return raw


def _as_relationship(raw: Any, where: str) -> Relationship:
    if isinstance(raw, dict):
        unknown = set(raw) - {"id", "source_id", "target_id", "relationship_type", "properties", "confidence",
                              "valid_from", "valid_to", "source", "target", "type"}
        if unknown:
            raise InvalidRequestError(f"unknown field(s) {sorted(unknown)}", where)
        raw = Relationship(id=raw.get("id") or "", source_id=raw.get("source_id") or raw.get("source"),
                           target_id=raw.get("target_id") or raw.get("target"),
                           relationship_type=raw.get("relationship_type") or raw.get("type"),
                           properties=raw.get("properties") or {}, confidence=raw.get("confidence", 1.0),
                           valid_from=utc(raw.get("valid_from"), f"{where}.valid_from"),
                           valid_to=utc(raw.get("valid_to"), f"{where}.valid_to"))
    if not isinstance(raw, Relationship):
        raise InvalidRequestError(f"must be a relationship object, got {type(raw).__name__}", where)
    for key in ("source_id", "target_id"):
        if not isinstance(getattr(raw, key), str) or not getattr(raw, key):
            raise InvalidRequestError("must name an entity (its id or name)", f"{where}.{key}")
    if not isinstance(raw.relationship_type, str) or not _TYPE_RE.fullmatch(raw.relationship_type) \
            or raw.relationship_type == MENTIONS:
        raise InvalidRequestError("must be a type name (letters, digits, '_'; not 'MENTIONS')",
                                  f"{where}.relationship_type")
    return raw
