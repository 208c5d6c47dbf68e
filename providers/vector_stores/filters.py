"""Metadata filters: one small language, parsed once, compiled by each store.

The language (MongoDB-like, what LangChain and LlamaIndex users know)::

    {"topic": "ai"}                              equality
    {"year": {"$gte": 2020, "$lt": 2025}}        numeric range
    {"day": {"$gte": "2024-01-01T00:00:00Z"}}    date range (ISO 8601 strings)
    {"lang": {"$in": ["en", "de"]}}              membership ($nin: not in)
    {"draft": {"$ne": true}}                     not equal ($exists: bool)
    {"created_at": {"$gte": "2024-05-01"}}       the document's own timestamps
    {"$or": [{...}, {...}]}, {"$and": [...]}     boolean combinations

Keys side by side are ANDed. A key is a metadata field (dotted for nesting,
``a.b``); ``created_at`` and ``updated_at`` name the document's timestamps.
Every mistake is an `InvalidRequestError` naming its path under ``filters``,
so an unknown operator never reaches a database.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Union

from providers.errors import InvalidRequestError

TIMESTAMP_FIELDS = frozenset({"created_at", "updated_at"})
RANGE_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPS = frozenset({"$eq", "$ne", "$in", "$nin", "$exists", *RANGE_OPS})
MAX_IN_VALUES = 1000
MAX_DEPTH = 8
# Metadata keys become JSON paths (Postgres) or payload keys (Qdrant): keep
# them plain. Values are always bound as parameters, never spliced.
# (fullmatch: "$" would also accept a final newline.)
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}(\.[A-Za-z_][A-Za-z0-9_\-]{0,63}){0,7}")

Scalar = Union[str, int, float, bool]


@dataclass(frozen=True)
class Condition:
    """``field op value``; ``field`` is a metadata path unless ``timestamp``."""

    field: str
    op: str  # one of OPS
    value: Any  # Scalar, list[Scalar] for $in/$nin, bool for $exists, datetime for dates
    timestamp: bool = False  # field is created_at / updated_at

    @property
    def path(self) -> list[str]:
        return self.field.split(".")


@dataclass(frozen=True)
class Group:
    """All (``kind == "and"``) or any (``"or"``) of ``items``."""

    kind: str
    items: tuple[Union[Group, Condition], ...]


Filter = Union[Group, Condition]


def parse_filters(filters: Any, where: str = "filters") -> Group | None:
    """The filter tree of ``filters``, or ``None`` for no filter."""
    if filters is None:
        return None
    group = _parse_object(filters, where, 0)
    return group if group.items else None


def _parse_object(obj: Any, where: str, depth: int) -> Group:
    if depth > MAX_DEPTH:
        raise InvalidRequestError(f"nested deeper than {MAX_DEPTH} levels", where)
    if not isinstance(obj, dict):
        raise InvalidRequestError(f"must be an object, got {type(obj).__name__}", where)
    items: list[Filter] = []
    for key, value in obj.items():
        at = f"{where}.{key}"
        if not isinstance(key, str):
            raise InvalidRequestError("keys must be strings", where)
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidRequestError("must be a non-empty list of filter objects", at)
            subs = tuple(_parse_object(v, f"{at}[{i}]", depth + 1) for i, v in enumerate(value))
            items.append(Group(key[1:], subs))
        elif key.startswith("$"):
            raise InvalidRequestError(f"unknown operator {key!r} at this level; use $and or $or", at)
        else:
            items.extend(_parse_field(key, value, at))
    return Group("and", tuple(items))


def _parse_field(key: str, spec: Any, at: str) -> list[Condition]:
    if not _KEY_RE.fullmatch(key):
        raise InvalidRequestError(
            "invalid field name: letters, digits, '_' and '-', dotted for nesting, up to 64 characters a part", at)
    timestamp = key in TIMESTAMP_FIELDS
    if not isinstance(spec, dict):
        return [_condition(key, "$eq", spec, at, timestamp)]
    if not spec:
        raise InvalidRequestError("empty condition", at)
    out = []
    for op, value in spec.items():
        if op not in OPS:
            raise InvalidRequestError(f"unknown operator {op!r}; known: {', '.join(sorted(OPS))}", f"{at}.{op}")
        out.append(_condition(key, op, value, f"{at}.{op}", timestamp))
    return out


def _condition(key: str, op: str, value: Any, at: str, timestamp: bool) -> Condition:
    if op == "$exists":
        if not isinstance(value, bool):
            raise InvalidRequestError("must be true or false", at)
        if timestamp:
            raise InvalidRequestError("timestamps always exist", at)
        return Condition(key, op, value, timestamp)
    if op in ("$in", "$nin"):
        if not isinstance(value, list) or not value:
            raise InvalidRequestError("must be a non-empty list", at)
        if len(value) > MAX_IN_VALUES:
            raise InvalidRequestError(f"has {len(value)} values; the limit is {MAX_IN_VALUES}", at)
        values = [_scalar(v, f"{at}[{i}]", timestamp) for i, v in enumerate(value)]
        return Condition(key, op, values, timestamp)
    scalar = _scalar(value, at, timestamp)
    if op in RANGE_OPS:
        if isinstance(scalar, bool) or not isinstance(scalar, (int, float, datetime)):
            if isinstance(scalar, str):
                scalar = parse_datetime(scalar, at)
            else:
                raise InvalidRequestError("a range needs a number or an ISO 8601 date", at)
    return Condition(key, op, scalar, timestamp)


def _scalar(value: Any, at: str, timestamp: bool) -> Any:
    if timestamp:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidRequestError("must be an ISO 8601 date or epoch seconds", at)
        return parse_datetime(value, at)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequestError("must be a finite number", at)
    if value is None or not isinstance(value, (str, int, float, bool)):
        raise InvalidRequestError(f"must be a string, number or boolean, got {type(value).__name__}", at)
    if isinstance(value, str) and "\x00" in value:  # no stored string can hold one (check_metadata)
        raise InvalidRequestError("must not contain NUL characters", at)
    return value


def parse_datetime(value: Any, at: str) -> datetime:
    """ISO 8601 (``Z`` allowed; naive means UTC) or epoch seconds, as an aware datetime."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise InvalidRequestError(f"not an ISO 8601 date: {str(value)[:40]!r}", at) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def matches(tree: Filter | None, metadata: dict[str, Any], created_at: datetime | None = None,
            updated_at: datetime | None = None) -> bool:
    """Evaluate a filter in Python: the reference semantics the stores' compilers follow."""
    if tree is None:
        return True
    if isinstance(tree, Group):
        results = (matches(i, metadata, created_at, updated_at) for i in tree.items)
        return all(results) if tree.kind == "and" else any(results)
    if tree.timestamp:
        actual: Any = created_at if tree.field == "created_at" else updated_at
        present = actual is not None
    else:
        actual, present = metadata, True
        for part in tree.path:
            if isinstance(actual, dict) and part in actual:
                actual = actual[part]
            else:
                present, actual = False, None
                break
    op, value = tree.op, tree.value
    if op == "$exists":
        return present == value
    if op == "$eq":
        return present and _same(actual, value)
    if op == "$ne":
        return not (present and _same(actual, value))
    if op == "$in":
        return present and any(_same(actual, v) for v in value)
    if op == "$nin":
        return not (present and any(_same(actual, v) for v in value))
    # ranges: numbers against numbers, dates against values that parse as dates
    if isinstance(value, datetime):
        if isinstance(actual, datetime):
            left = actual
        elif isinstance(actual, str):
            try:
                left = parse_datetime(actual, "")
            except InvalidRequestError:
                return False
        else:
            return False
    elif isinstance(actual, (int, float)) and not isinstance(actual, bool):
        left = actual
    else:
        return False
    return {"$gt": left > value, "$gte": left >= value, "$lt": left < value, "$lte": left <= value}[op]


def _same(a: Any, b: Any) -> bool:
    # JSON semantics: true is not 1, 1 equals 1.0
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


__all__ = ["Condition", "Filter", "Group", "matches", "parse_datetime", "parse_filters", "TIMESTAMP_FIELDS"]
