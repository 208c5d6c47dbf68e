"""Time in the graph: ISO-8601 UTC strings in the database, and entity timelines.

Timestamps are stored as fixed-width strings (``2024-05-01T12:00:00.000000+00:00``):
they sort and compare as text exactly as in time (see `providers.graph.engine`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from providers.errors import InvalidRequestError
from providers.interfaces.graph_engines import Entity, Relationship


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
