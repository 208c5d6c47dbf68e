"""Compile a parsed filter tree (`providers.vector_stores.filters`) to a SQL condition.

Values and JSON paths are bound parameters; the only identifiers are the
configured column names, quoted by ``psycopg.sql.Identifier``. The semantics
follow `filters.matches` exactly (the behaviour suite checks both agree):

- equality and ``$in`` use JSONB containment (``@>``), which the GIN index
  on the metadata column answers, and which keeps JSON's types (``true`` is
  not ``1``; ``1`` equals ``1.0``);
- ranges cast only values of the right kind (a number, or a string that is a
  valid timestamp: ``pg_input_is_valid``, PostgreSQL 16+), so one odd
  document never fails a whole query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from providers.vector_stores.filters import RANGE_OPS, Condition, Group


def compile_filter(tree: Group | None, metadata_col: str) -> tuple[sql.Composable, list[Any]]:
    """``(condition, params)``; ``TRUE`` when there is no filter."""
    if tree is None:
        return sql.SQL("TRUE"), []
    params: list[Any] = []
    return _node(tree, sql.Identifier(metadata_col), params), params


def _node(node: Group | Condition, meta: sql.Identifier, params: list[Any]) -> sql.Composable:
    if isinstance(node, Group):
        if not node.items:
            return sql.SQL("TRUE")
        joiner = sql.SQL(" AND " if node.kind == "and" else " OR ")
        return sql.SQL("({})").format(joiner.join(_node(i, meta, params) for i in node.items))
    return _condition(node, meta, params)


def _condition(c: Condition, meta: sql.Identifier, params: list[Any]) -> sql.Composable:
    if c.timestamp:
        col = sql.Identifier(c.field)
        if c.op in RANGE_OPS:
            params.append(c.value)
            return sql.SQL("({} " + RANGE_OPS[c.op] + " %s)").format(col)
        if c.op in ("$eq", "$ne"):
            params.append(c.value)
            return sql.SQL("({} " + ("=" if c.op == "$eq" else "<>") + " %s)").format(col)
        params.append(list(c.value))
        neg = "NOT " if c.op == "$nin" else ""
        return sql.SQL("(" + neg + "{} = ANY(%s::timestamptz[]))").format(col)
    if c.op == "$exists":
        params.append(c.path)
        return sql.SQL("({} #> %s IS " + ("NOT NULL" if c.value else "NULL") + ")").format(meta)
    if c.op in ("$eq", "$ne"):
        params.append(Jsonb(_nest(c.path, c.value)))
        neg = "NOT " if c.op == "$ne" else ""
        return sql.SQL("(" + neg + "{} @> %s)").format(meta)
    if c.op in ("$in", "$nin"):
        params.append([Jsonb(_nest(c.path, v)) for v in c.value])
        neg = "NOT " if c.op == "$nin" else ""
        return sql.SQL("(" + neg + "{} @> ANY(%s::jsonb[]))").format(meta)
    op = RANGE_OPS[c.op]
    if isinstance(c.value, datetime):
        params.extend([c.path, c.path, c.path, c.value])
        return sql.SQL(
            "((CASE WHEN jsonb_typeof({m} #> %s) = 'string' AND pg_input_is_valid({m} #>> %s, 'timestamptz') "
            "THEN ({m} #>> %s)::timestamptz END) " + op + " %s)").format(m=meta)
    params.extend([c.path, c.path, c.value])
    return sql.SQL(
        "((CASE WHEN jsonb_typeof({m} #> %s) = 'number' THEN ({m} #> %s)::numeric END) " + op + " %s)"
    ).format(m=meta)


def _nest(path: list[str], value: Any) -> Any:
    """``["a", "b"], 1`` -> ``{"a": {"b": 1}}``: the containment probe for a dotted key."""
    for part in reversed(path):
        value = {part: value}
    return value
