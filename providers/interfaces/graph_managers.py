"""GRAPH_MANAGER: high-level, temporal operations over a graph engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .graph_engines import Entity, GraphSearchResult, Relationship


@dataclass
class EpisodeResult:
    """What ``add_episode`` did to the graph."""

    episode_id: str
    entity_ids: list[str] = field(default_factory=list)
    relationship_ids: list[str] = field(default_factory=list)
    invalidated_relationship_ids: list[str] = field(default_factory=list)


class GraphManager(ABC):
    """Contract of a temporal graph manager.

    It reaches its graph engine through the registry. Relationships carry
    ``valid_from``/``valid_to``; a contradicted fact is ended, never deleted,
    so the graph can be read as it was at any time ``as_of``.
    """

    @abstractmethod
    async def initialize(self, config: dict[str, Any]) -> None:
        """Resolve the graph engine (and optional extractor) named in ``config``."""

    @abstractmethod
    async def add_episode(
        self,
        content: str,
        timestamp: datetime,
        entities: list[Entity] | None = None,
        relationships: list[Relationship] | None = None,
        source: str | None = None,
    ) -> EpisodeResult:
        """Record an episode: merge entities by name and type, add relationships with provenance, end contradicted facts."""

    @abstractmethod
    async def invalidate_relationship(self, relationship_id: str, valid_to: datetime) -> bool:
        """End a relationship's validity at ``valid_to``; ``False`` if unknown."""

    @abstractmethod
    async def get_graph_as_of(
        self,
        as_of: datetime,
        entity_id: str | None = None,
        max_depth: int = 1,
    ) -> GraphSearchResult:
        """The graph (or one entity's neighbourhood) with only the facts valid at ``as_of``."""

    @abstractmethod
    async def get_entity_relationships(
        self,
        entity_id: str,
        relationship_type: str | None = None,
        direction: str = "both",
        as_of: datetime | None = None,
    ) -> list[Relationship]:
        """An entity's relationships valid at ``as_of`` (now when ``None``)."""

    @abstractmethod
    async def get_connected_entities(
        self,
        entity_id: str,
        relationship_type: str | None = None,
        max_depth: int = 1,
        as_of: datetime | None = None,
    ) -> GraphSearchResult:
        """Neighbourhood within ``max_depth`` hops over facts valid at ``as_of``."""

    @abstractmethod
    async def get_entity_timeline(
        self,
        entity_id: str,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Time-ordered history of an entity: episodes, facts starting and ending."""

    @abstractmethod
    async def get_changes(self, start_time: datetime, end_time: datetime) -> dict[str, Any]:
        """What changed between two times: entities added, relationships started and ended."""

    @abstractmethod
    async def search(
        self,
        query: str,
        entity_type: str | None = None,
        as_of: datetime | None = None,
        limit: int = 10,
    ) -> list[GraphSearchResult]:
        """Entities matching ``query`` by name, each with its current (or ``as_of``) facts, best first."""

    @abstractmethod
    async def health_check(self) -> dict[str, Any]:
        """``{"status": "healthy" | "unhealthy", ...}``; never raises."""

    @abstractmethod
    async def get_stats(self) -> dict[str, Any]:
        """Episode, entity and relationship counts, current and invalidated facts."""
