"""The registry's event log: what changed, when, and on which router replica.

Registrations, deletions, swaps, reloads, rollbacks (manual and automatic),
failed swaps, fallback and monitoring changes, breaker opens and closes and
health changes, each recorded where it happens (`Lifecycle`, `Rollout`,
`Observability`, the breakers through `FallbackCaller.on_breaker`).

Cluster-wide like the stats: each router replica keeps its own bounded deque
and publishes it whole under ``<app>/events/<replica id>`` in GCS
(`EventStore`), at most once per `PUBLISH_S` and only after something new was
recorded, so a quiet registry writes nothing. `EventLog.read` merges every
replica's list (this replica's live one, so what it just recorded is there at
once) newest first. Events are rare (a swap is seconds of deploying; a breaker
opens at most once per ``open_s``), so a whole-list write is cheap; the bound
keeps each key small (`MAX_EVENTS` events of a few hundred bytes). Lists of
replicas that died stay, like their stats: their events happened.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from deployments.table_store import PerReplicaStore
from providers.errors import InvalidRequestError

logger = logging.getLogger("ray.serve")

MAX_EVENTS = 200  # per router replica
PUBLISH_S = 1.0
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_DETAIL_CHARS = 500  # an error message in an event is a summary, not a traceback


class EventStore(PerReplicaStore):
    """Each router replica's events, under ``<app>/events/<replica id>`` (GCS)."""

    def __init__(self, app_name: str) -> None:
        super().__init__(app_name, "events")


class EventLog:
    """One router replica's events; ``store`` None keeps them in this process only
    (a unit test, or a caller without Ray)."""

    def __init__(self, replica_id: str, store: EventStore | None = None,
                 scrub: Callable[[str], str] = lambda s: s, max_events: int = MAX_EVENTS,
                 clock: Callable[[], float] = time.time) -> None:
        self.replica_id = replica_id
        self.store = store
        self.scrub = scrub
        self.clock = clock
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)
        # route key -> its serving version; breakers know only the key (set by the router).
        self.version_of: Callable[[str], int | None] = lambda key: None
        self._seq = itertools.count(1)
        self._dirty = False

    def record(self, kind: str, provider: str | None = None, version: int | None = None,
               detail: str | None = None, **fields: Any) -> dict[str, Any]:
        """Append one event. Synchronous and cheap: called from the breakers inside a call."""
        seq = next(self._seq)
        event = {"id": f"{self.replica_id}:{seq}", "at": round(self.clock(), 3), "kind": kind,
                 "provider": provider, "version": version,
                 "detail": self.scrub(str(detail))[:_DETAIL_CHARS] if detail is not None else None,
                 "replica": self.replica_id, **fields}
        self.events.append(event)
        self._dirty = True
        return event

    def on_breaker(self, key: str, state: str, reason: str | None) -> None:
        """`FallbackCaller.on_breaker`: opens and closes are events; half-open (a trial
        is due) is not: it follows every open and would double the log for nothing."""
        if state == "open":
            self.record("breaker_opened", key, self.version_of(key), reason)
        elif state == "closed":
            self.record("breaker_closed", key, self.version_of(key))

    # -- cluster-wide ---------------------------------------------------------------------
    async def publish_loop(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_S)
            await self.publish()

    async def publish(self) -> None:
        if not self._dirty or self.store is None:
            return
        self._dirty = False
        try:
            await asyncio.to_thread(self.store.write, self.replica_id, list(self.events))
        except Exception as exc:  # events must never hurt serving; the next one retries
            self._dirty = True
            logger.warning("publishing router events failed: %s", exc)

    async def read(self, since: float | None = None, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        """Every replica's events after ``since`` (unix seconds), newest first, at most ``limit``."""
        lists: dict[str, list[dict[str, Any]]] = {}
        if self.store is not None:
            try:
                lists = await asyncio.to_thread(self.store.read_all)
            except Exception as exc:
                logger.warning("reading cluster events failed, showing this replica's only: %s", exc)
        lists[self.replica_id] = list(self.events)
        return {"events": merge_events(lists.values(), since, limit), "now": round(self.clock(), 3),
                "router_replicas": sorted(lists)}

    def clear(self) -> None:
        self.events.clear()
        self._dirty = False
        if self.store is not None:
            self.store.clear()


def merge_events(lists: Any, since: float | None, limit: int) -> list[dict[str, Any]]:
    """Events of several replicas as one list, newest first; ties keep each replica's order."""
    merged = [e for events in lists for e in events if since is None or e.get("at", 0) > since]
    merged.sort(key=lambda e: (e.get("at", 0), _seq_of(e)), reverse=True)
    return merged[:limit]


def _seq_of(event: dict[str, Any]) -> int:
    try:
        return int(str(event.get("id", "")).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def parse_query(since: str | None, limit: str | None) -> tuple[float | None, int]:
    """``since`` and ``limit`` of ``GET /v1/events``; a bad one raises
    `InvalidRequestError` naming it (a 400)."""
    parsed_since = None
    if since is not None:
        try:
            parsed_since = float(since)
        except ValueError:
            raise InvalidRequestError(f"must be a number (unix seconds), got {since[:50]!r}", "since") from None
        if not math.isfinite(parsed_since):
            raise InvalidRequestError("must be a finite number (unix seconds)", "since")
    parsed_limit = DEFAULT_LIMIT
    if limit is not None:
        if not re.fullmatch(r"[0-9]{1,7}", limit.strip()) or not 1 <= int(limit) <= MAX_LIMIT:
            raise InvalidRequestError(f"must be an integer from 1 to {MAX_LIMIT}, got {limit[:50]!r}", "limit")
        parsed_limit = int(limit)
    return parsed_since, parsed_limit
