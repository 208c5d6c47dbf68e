"""Entities and relationships to query parameter rows, and result rows back to them.

Rows come back from every engine as plain scalar columns (``e.id AS id``, ...),
never as engine node objects, so one conversion serves all engines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from providers.checks import check_id
from providers.errors import InvalidRequestError
from providers.graph.checks import (
    MAX_NAME_CHARS,
    check_confidence,
    check_properties,
    check_text,
    check_type,
    decode_properties,
    encode_properties,
    new_or_checked_id,
)
from providers.graph.times import from_iso, iso, to_utc
from providers.interfaces.graph_engines import Entity, GraphSearchResult, Relationship

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


# -- paths ---------------------------------------------------------------------------------

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
