"""The knowledge graph over HTTP: ``/v1/graph/{name}/...``.

``{name}`` is a graph manager or a graph engine. A manager brings episodes
and time (``?as_of=`` on reads); its engine (``config.graph_engine``) serves
the plain entity and relationship calls. A bare engine serves those alone.

``POST /v1/graph/{name}/cypher`` is read-only for everyone but admins
(``Authorization: Bearer <admin token>``): write clauses are refused with a
400 naming ``query`` before anything reaches the database.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from deployments.admin_api import admin_denied
from deployments.http_api import (
    BodyReader,
    error_response,
    json_body,
    json_response,
    registry_error_response,
    rename_field,
    route,
)
from providers.errors import InvalidRequestError, ProviderNotFoundError
from providers.interfaces.graph_engines import Entity, Relationship
from providers.registry.limits import check_chars
from providers.types import ProviderType

ENGINE, MANAGER = ProviderType.GRAPH_ENGINE, ProviderType.GRAPH_MANAGER


def to_json(value: Any) -> Any:
    """Dataclasses (entities, relationships, results) as JSON-able dicts, datetimes as ISO strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def parse_time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(f"not an ISO 8601 date: {value[:40]!r}", field) from None


class EntityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=512)
    name: str = Field(..., min_length=1, max_length=10_000)
    entity_type: str = Field(..., min_length=1, max_length=63)
    properties: dict[str, Any] = Field(default_factory=dict)
    confidence: float = Field(1.0, ge=0, le=1)


class EntitiesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entities: list[EntityIn] = Field(..., min_length=1)  # how many: registry.max_items_per_request


class RelationshipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=512)
    source_id: str = Field(..., min_length=1)
    target_id: str = Field(..., min_length=1)
    relationship_type: str = Field(..., min_length=1, max_length=63)
    properties: dict[str, Any] = Field(default_factory=dict)
    confidence: float = Field(1.0, ge=0, le=1)
    valid_from: datetime | None = None
    valid_to: datetime | None = None


class RelationshipsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    relationships: list[RelationshipIn] = Field(..., min_length=1)


class CypherIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(..., min_length=1)  # how long: registry.max_chars_per_text
    parameters: dict[str, Any] = Field(default_factory=dict)


class EpisodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(..., min_length=1)
    timestamp: datetime | None = None
    entities: list[dict[str, Any]] | None = None
    relationships: list[dict[str, Any]] | None = None
    source: str | None = Field(None, max_length=200)


class GraphRoutes:
    """Graph engines and managers over HTTP: ``{name}`` is a manager (with its engine) or a bare engine."""

    def __init__(self, core: Any, body: BodyReader) -> None:
        self.core, self.body = core, body

    async def _graph_target(self, name: str) -> tuple[str, str | None]:
        """``(engine name, manager name or None)`` for ``{name}``."""
        manager = self.core.table.routes.get(f"{MANAGER.value}/{name}")
        if manager is None:
            await self.core.refresh()
            manager = self.core.table.routes.get(f"{MANAGER.value}/{name}")
        if manager is not None:
            engine = manager.spec.config.get("graph_engine")
            if not engine:
                raise InvalidRequestError(f"graph manager {name!r} names no graph_engine", "name")
            return engine, name
        if f"{ENGINE.value}/{name}" in self.core.table.routes:
            return name, None
        known = sorted(set(self.core.table.names(ENGINE)) | set(self.core.table.names(MANAGER)))
        raise ProviderNotFoundError(f"no graph engine or manager named {name!r}; known: {known or 'none'}")

    async def _graph(self, name: str, op: Any, renames: dict[str, str] | None = None) -> Response:
        """``renames``: the Python argument an error names -> the query parameter the caller sent."""
        try:
            engine, manager = await self._graph_target(name)
            result = await op(engine, manager)
        except Exception as exc:
            for old, new in (renames or {}).items():
                exc = rename_field(exc, old, new)
            return registry_error_response(exc, param="name")
        if isinstance(result, Response):
            return result
        return json_response(to_json(result))

    @staticmethod
    def _need_manager(manager: str | None, what: str) -> str:
        if manager is None:
            raise InvalidRequestError(f"{what} needs a graph manager; this name is a bare graph engine", "name")
        return manager

    @route("POST", "/v1/graph/{name}/entities", openapi_extra=json_body(EntitiesIn))
    async def http_create_entities(self, name: str, request: Request) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            body = await self.body.parse(request, EntitiesIn)
            ents = [Entity(**e.model_dump()) for e in body.entities]
            return {"ids": await self.core.call(ENGINE, engine, "create_entities", [ents])}

        return await self._graph(name, op)

    @route("GET", "/v1/graph/{name}/entities/{entity_id:path}")
    async def http_get_entity(self, name: str, entity_id: str) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            found = await self.core.call(ENGINE, engine, "get_entity", [entity_id])
            if found is None:
                return error_response(404, f"no entity {entity_id!r} in graph {name!r}", "entity_id", "not_found")
            return found

        return await self._graph(name, op)

    @route("GET", "/v1/graph/{name}/entities")
    async def http_find_entities(self, name: str, entity_type: str | None = None, limit: int = 100) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            if limit < 1:  # the upper bounds: registry.max_top_k, the engine's config.max_limit
                raise InvalidRequestError("must be a positive integer", "limit")
            return {"entities": await self.core.call(ENGINE, engine, "find_entities", [entity_type, None, limit])}

        return await self._graph(name, op)

    @route("POST", "/v1/graph/{name}/relationships", openapi_extra=json_body(RelationshipsIn))
    async def http_create_relationships(self, name: str, request: Request) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            body = await self.body.parse(request, RelationshipsIn)
            rels = [Relationship(**r.model_dump()) for r in body.relationships]
            return {"ids": await self.core.call(ENGINE, engine, "create_relationships", [rels])}

        return await self._graph(name, op)

    @route("GET", "/v1/graph/{name}/relationships/{relationship_id:path}")
    async def http_get_relationship(self, name: str, relationship_id: str) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            found = await self.core.call(ENGINE, engine, "get_relationship", [relationship_id])
            if found is None:
                return error_response(404, f"no relationship {relationship_id!r} in graph {name!r}",
                                      "relationship_id", "not_found")
            return found

        return await self._graph(name, op)

    @route("GET", "/v1/graph/{name}/neighbors/{entity_id:path}")
    async def http_neighbors(self, name: str, entity_id: str, depth: int = 1, relationship_type: str | None = None,
                             as_of: str | None = None) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            when = parse_time(as_of, "as_of")
            if not await self.core.call(ENGINE, engine, "entity_exists", [entity_id]):
                return error_response(404, f"no entity {entity_id!r} in graph {name!r}", "entity_id", "not_found")
            if when is not None or manager is not None:
                return await self.core.call(MANAGER, self._need_manager(manager, "as_of"), "get_connected_entities",
                                       [entity_id, relationship_type, depth, when])
            return {"entities": await self.core.call(ENGINE, engine, "get_connected_entities",
                                                [entity_id, relationship_type, depth])}

        return await self._graph(name, op, {"max_depth": "depth"})

    @route("GET", "/v1/graph/{name}/path")
    async def http_path(self, name: str, source: str, target: str, max_depth: int = 3) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            for field, eid in (("source", source), ("target", target)):
                if not await self.core.call(ENGINE, engine, "entity_exists", [eid]):
                    return error_response(404, f"no entity {eid!r} in graph {name!r}", field, "not_found")
            path = await self.core.call(ENGINE, engine, "find_path", [source, target, max_depth])
            return {"path": path, "found": path is not None}

        return await self._graph(name, op)

    @route("POST", "/v1/graph/{name}/cypher", openapi_extra=json_body(CypherIn))
    async def http_cypher(self, name: str, request: Request) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            from providers.graph.common import is_read_only

            body = await self.body.parse(request, CypherIn)
            check_chars(body.query, "query", self.core.settings.max_chars_per_text)  # before lexing it
            admin = admin_denied(request, self.core.settings.admin_token_env) is None
            if not admin and not is_read_only(body.query):
                raise InvalidRequestError("write clauses need the admin token (Authorization: Bearer ...); "
                                          "this endpoint is read-only for others", "query")
            return {"rows": await self.core.call(ENGINE, engine, "execute_cypher", [body.query, body.parameters])}

        return await self._graph(name, op)

    @route("POST", "/v1/graph/{name}/episodes", openapi_extra=json_body(EpisodeIn))
    async def http_add_episode(self, name: str, request: Request) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            body = await self.body.parse(request, EpisodeIn)
            when = body.timestamp or datetime.now().astimezone()
            return await self.core.call(MANAGER, self._need_manager(manager, "episodes"), "add_episode",
                                   [body.content, when, body.entities, body.relationships, body.source])

        return await self._graph(name, op)

    @route("GET", "/v1/graph/{name}/timeline/{entity_id:path}")
    async def http_timeline(self, name: str, entity_id: str, start_time: str | None = None,
                            end_time: str | None = None) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            lo, hi = parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
            if not await self.core.call(ENGINE, engine, "entity_exists", [entity_id]):
                return error_response(404, f"no entity {entity_id!r} in graph {name!r}", "entity_id", "not_found")
            if manager is not None:
                events = await self.core.call(MANAGER, manager, "get_entity_timeline", [entity_id, lo, hi])
            else:
                events = await self.core.call(ENGINE, engine, "get_entity_timeline", [entity_id, lo, hi])
            return {"entity_id": entity_id, "events": events}

        return await self._graph(name, op)

    @route("GET", "/v1/graph/{name}/changes")
    async def http_changes(self, name: str, start_time: str, end_time: str) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            lo, hi = parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
            return await self.core.call(MANAGER, self._need_manager(manager, "changes"), "get_changes", [lo, hi])

        return await self._graph(name, op)

    @route("GET", "/v1/graph/{name}/as_of")
    async def http_as_of(self, name: str, as_of: str, entity_id: str | None = None, depth: int = 1) -> Response:
        async def op(engine: str, manager: str | None) -> Any:
            when = parse_time(as_of, "as_of")
            return await self.core.call(MANAGER, self._need_manager(manager, "as_of"), "get_graph_as_of",
                                   [when, entity_id, depth])

        return await self._graph(name, op, {"max_depth": "depth"})
