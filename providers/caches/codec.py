"""The one value format both caches store, so they behave the same.

A stored value is one tag byte and a body:

    b"j" + orjson        JSON-able values (dict, list, str, int, float, bool, None)
    b"b" + raw bytes     bytes, bytearray, memoryview (read back as bytes)
    b"n" + u16 header length + orjson {"d": dtype.str, "s": shape} + raw data
                         numpy arrays: dtype (byte order included) and shape kept

No pickle: a cache shared over the network must never run code on read, and
decode() only ever builds JSON values, bytes and plain numeric arrays.

Also here: the key and expiry rules both caches apply before storing, for the
same reason (one behaviour, two back ends).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson

from providers.errors import InvalidRequestError

_JSON, _BYTES, _ARRAY = b"j", b"b", b"n"
# Plain numeric kinds only: bool, signed, unsigned, float, complex. Object,
# void (structured) and string arrays are refused on both sides.
_ARRAY_KINDS = frozenset("biufc")
_HEADER_LEN = struct.Struct("<H")


def _numpy_scalar(obj: Any) -> Any:
    """orjson's fallback: numpy scalars (a score, a count) become Python numbers."""
    if isinstance(obj, np.generic) and obj.dtype.kind in _ARRAY_KINDS and obj.dtype.kind != "c":
        return obj.item()
    if isinstance(obj, np.ndarray):
        # Silently turning a nested array into a list would lose its dtype.
        raise TypeError("numpy arrays are cached only as the whole value, not inside a container")
    raise TypeError(f"type {type(obj).__name__} is not JSON serializable")


def encode(value: Any) -> bytes:
    """The stored form of ``value``; `InvalidRequestError` (field ``value``) if it has none."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _BYTES + bytes(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _ARRAY_KINDS:
            raise InvalidRequestError(f"numpy arrays of dtype {value.dtype} cannot be cached", "value")
        header = orjson.dumps({"d": value.dtype.str, "s": list(value.shape)})
        return _ARRAY + _HEADER_LEN.pack(len(header)) + header + np.ascontiguousarray(value).tobytes()
    try:
        return _JSON + orjson.dumps(value, default=_numpy_scalar)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidRequestError(f"cannot be cached: {exc}", "value") from None


def decode(data: bytes) -> Any:
    """The value ``encode`` stored; ``ValueError`` on anything it did not write."""
    try:
        return _decode(data)
    except (struct.error, KeyError, TypeError, ValueError) as exc:  # orjson's errors are ValueErrors
        raise ValueError(f"not a cached value: {exc}") from None


def _decode(data: bytes) -> Any:
    tag, body = data[:1], memoryview(data)[1:]
    if tag == _JSON:
        return orjson.loads(body)
    if tag == _BYTES:
        return bytes(body)
    if tag == _ARRAY:
        (n,) = _HEADER_LEN.unpack_from(body)
        header = orjson.loads(body[2:2 + n])
        dtype, shape = np.dtype(header["d"]), tuple(int(d) for d in header["s"])
        raw = body[2 + n:]
        if dtype.kind not in _ARRAY_KINDS or math.prod(shape) * dtype.itemsize != len(raw):
            raise ValueError("corrupt cached array")
        # A copy: frombuffer's view is read-only, and callers may modify what they get.
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    raise ValueError(f"unknown cache value tag {bytes(tag)!r}")


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidRequestError("cache keys are non-empty strings", "key")
    return key


def resolve_ttl(ttl: float | None, default: float | None) -> float | None:
    """Seconds until expiry (``None``: never); ``ttl=None`` means the configured default."""
    if ttl is None:
        return default
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0 or math.isinf(ttl):
        raise InvalidRequestError("must be a positive number of seconds (or None for the default)", "ttl")
    return float(ttl)
