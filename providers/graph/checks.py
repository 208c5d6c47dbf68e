"""Input checks of entities and relationships, and the JSON encoding of their properties.

They run before any database work, so a bad batch writes nothing, and each
error names its field (``entities[3].name``). ``properties`` is stored as a
JSON string with sorted keys (see `providers.graph.engine`).
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import orjson

from providers.checks import check_id
from providers.errors import InvalidRequestError

MAX_TYPE_CHARS = 256
MAX_NAME_CHARS = 4096
MAX_PROPERTIES_BYTES = 64 * 1024
DIRECTIONS = ("outgoing", "incoming", "both")


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
