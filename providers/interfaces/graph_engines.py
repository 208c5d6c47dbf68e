"""GRAPH_ENGINE: store and query a knowledge graph of entities and relationships."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Entity:
    """A node of the knowledge graph."""

    id: str
    name: str
    entity_type: str
    properties: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    confidence: float = 1.0


@dataclass
class Relationship:
    """A directed, typed edge, valid from ``valid_from`` until ``valid_to`` (open when ``None``)."""

    id: str
    source_id: str
    target_id: str
    relationship_type: str
    properties: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    confidence: float = 1.0
    valid_from: datetime | None = None
    valid_to: datetime | None = None


@dataclass
class GraphSearchResult:
    """A subgraph answering a query (a neighbourhood, a path, a search hit)."""

    entities: list[Entity] = field(default_factory=list)
    relationships: list[Relationship] = field(default_factory=list)
    score: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class GraphEngine(ABC):
    """Contract of a graph engine (the seed's interface, method for method).

    Every method may do I/O and is async. Unknown ids give ``None`` or
    ``False``, never an exception; values reach the database as parameters.
    """

    @abstractmethod
    async def initialize(self, config: dict[str, Any]) -> None:
        """Open the database described by ``config`` and ensure its schema."""

    @abstractmethod
    async def create_entity(self, entity: Entity) -> str:
        """Create (or merge by id) one entity; its id."""

    @abstractmethod
    async def create_entities(self, entities: list[Entity]) -> list[str]:
        """Create entities in one batch; their ids, in input order."""

    @abstractmethod
    async def get_entity(self, entity_id: str) -> Entity | None:
        """The entity with this id, or ``None``."""

    @abstractmethod
    async def update_entity(self, entity: Entity) -> bool:
        """Replace an entity's name, type and properties; ``False`` if unknown."""

    @abstractmethod
    async def delete_entity(self, entity_id: str) -> bool:
        """Delete an entity and its relationships; ``False`` if unknown."""

    @abstractmethod
    async def create_relationship(self, relationship: Relationship) -> str:
        """Create one relationship between existing entities; its id."""

    @abstractmethod
    async def create_relationships(self, relationships: list[Relationship]) -> list[str]:
        """Create relationships in one batch; their ids, in input order."""

    @abstractmethod
    async def get_relationship(self, relationship_id: str) -> Relationship | None:
        """The relationship with this id, or ``None``."""

    @abstractmethod
    async def delete_relationship(self, relationship_id: str) -> bool:
        """Delete one relationship; ``False`` if unknown."""

    @abstractmethod
    async def find_entities(
        self,
        entity_type: str | None = None,
        properties: dict[str, Any] | None = None,
        limit: int = 100,
    ) -> list[Entity]:
        """Entities of ``entity_type`` whose properties equal those given."""

    @abstractmethod
    async def get_entity_relationships(
        self,
        entity_id: str,
        relationship_type: str | None = None,
        direction: str = "both",
    ) -> list[Relationship]:
        """Relationships touching an entity; ``direction`` is "outgoing", "incoming" or "both"."""

    @abstractmethod
    async def get_connected_entities(
        self,
        entity_id: str,
        relationship_type: str | None = None,
        max_depth: int = 1,
    ) -> list[Entity]:
        """Distinct entities within ``max_depth`` hops, the start excluded."""

    @abstractmethod
    async def find_path(
        self, source_id: str, target_id: str, max_depth: int = 3
    ) -> GraphSearchResult | None:
        """A shortest path of at most ``max_depth`` hops, in path order; ``None`` if none."""

    @abstractmethod
    async def execute_cypher(
        self, query: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run raw Cypher; its result rows."""

    @abstractmethod
    async def get_entity_timeline(
        self,
        entity_id: str,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Time-ordered events (creation, updates, relationships valid) of an entity in the window."""

    @abstractmethod
    async def entity_exists(self, entity_id: str) -> bool:
        """Whether an entity with this id exists."""

    @abstractmethod
    async def relationship_exists(self, relationship_id: str) -> bool:
        """Whether a relationship with this id exists."""

    @abstractmethod
    async def health_check(self) -> dict[str, Any]:
        """``{"status": "healthy" | "unhealthy", ...}``; never raises."""

    @abstractmethod
    async def get_stats(self) -> dict[str, Any]:
        """Entity and relationship counts, by type where cheap."""
