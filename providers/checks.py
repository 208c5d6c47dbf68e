"""Input checks every kind of store applies alike (vector stores, graph engines)."""

from __future__ import annotations

from typing import Any

from providers.errors import InvalidRequestError

MAX_ID_CHARS = 512


def check_id(value: Any, where: str) -> str:
    """A caller's id: a non-empty string of at most `MAX_ID_CHARS` characters, no NUL."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError("must be a non-empty string", where)
    if len(value) > MAX_ID_CHARS:
        raise InvalidRequestError(f"has {len(value)} characters; the limit is {MAX_ID_CHARS}", where)
    if "\x00" in value:
        raise InvalidRequestError("must not contain NUL characters", where)
    return value
