"""Ids for writes that arrive without one, the same each time the same request is sent again.

Why: with HAProxy's retry-on (serve_app/ingress.py), a request that was inside a
router replica when it died is sent again to another replica (issue 13, part 2).
A write that names its ids is an upsert and runs twice harmlessly; a write whose
ids a fresh ``uuid4`` would make stores its items twice. HAProxy gives every
request an ``x-request-id`` before it first forwards it (Ray's haproxy_templates.py:
``unique-id-format %[uuid]`` and ``set-header x-request-id ... if !found``), and a
retry carries the same header, so ids derived from it repeat on the retry.

The id also hashes the scope, the item's position and its content: a client that
sends its own ``x-request-id`` twice for different writes gets different ids, so a
reused request id never overwrites another item; the same bytes sent again (a
retry, or a client repeating its own request with the same id) write the same ids.
"""

from __future__ import annotations

import hashlib
import uuid

NAMESPACE = uuid.UUID("6f1d3c2e-5b7a-4e08-9a4c-1d2e3f405162")  # this registry's; any fixed value works
REQUEST_ID_HEADER = "x-request-id"  # HAProxy's and Ray Serve's (ray/serve/_private/constants.py)
MAX_KEY_CHARS = 200  # a longer header is truncated, not refused: it is only a seed


def write_id(key: str | None, scope: str, index: int, content: str) -> str:
    """The id of item ``index`` of a write in ``scope``: derived from ``key`` (a
    request id or idempotency key) when there is one, random otherwise."""
    if not key:
        return str(uuid.uuid4())
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
    return str(uuid.uuid5(NAMESPACE, "\x1f".join((key[:MAX_KEY_CHARS], scope, str(index), digest))))
