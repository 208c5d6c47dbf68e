"""One hop for Python callers: the routing core in the caller's own process.

Through the router, a Python call costs two Serve hops (caller -> router
replica -> provider replica). Here the caller runs the same `RouterCore` the
router replicas run (limits, argument and embedding-space guards, deadlines,
breakers, the fallback chain, answer checks, the embedding cache and merging)
and calls the provider's deployment handle itself: one hop. Its reads go by
value over gRPC (`deployments.handles`), as the router replicas' calls do.

- The route table is the one in GCS. It is re-read lazily, at most every
  `TABLE_POLL_S`, when a call finds its copy older than that: no background
  task, so it works from any event loop (callers often use `asyncio.run`
  once per call) at one GCS read per half second of traffic. A swapped
  version is retired `2 * TABLE_POLL_S + 1` s after the flip, so a call never
  routes to a version that is gone; if one does (a caller paused in between),
  the table is re-read and, if a provider of the call's chain changed
  version, the call goes to the current one.
- Usage and breakers are this process's, published into the registry's
  cluster-wide stats (`StatsStore`, under ``client-<host>-<pid>-<id>``) at
  most every `PUBLISH_S`, so `get_stats` counts these calls too.
- The router stays the one writer of the table and where HTTP enters:
  registry changes still go through it (`deployments.client`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from typing import Any

from deployments.handles import by_value_reads_handle
from deployments.liveness import provider_liveness
from deployments.observability import usage_snapshot
from deployments.router_core import RouterCore
from deployments.table_store import TABLE_POLL_S, StatsStore, TableStore
from deployments.tools_api import ArgumentGuard
from deployments.vector_space_guard import SpaceGuard
from providers.errors import ProviderCallError
from providers.registry.config import RegistrySettings
from providers.types import ProviderType

PUBLISH_S = 1.0


class DirectRoute:
    """Routes this process's provider calls itself, over the registry's table in GCS."""

    def __init__(self, settings: RegistrySettings, store: TableStore, table: Any) -> None:
        self.core = RouterCore(settings, store, table, guards=[ArgumentGuard(), SpaceGuard()],
                               handle_of=by_value_reads_handle)
        self.core.caller.liveness = provider_liveness(self.core)
        self.stats_store = StatsStore(settings.app_name)
        self.client_id = f"client-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.retried = 0  # calls sent again after their version was retired
        self._read_at = time.monotonic()
        self._published_at = 0.0

    @classmethod
    async def attach(cls, settings: dict[str, Any]) -> DirectRoute | None:
        """``settings``: the router's `RegistrySettings` (its ``client_settings``). None when
        the table is not in GCS (a router of another version): then the router serves."""
        parsed = RegistrySettings.model_validate(settings)
        store = TableStore(parsed.app_name)
        table = await store.aread()
        if table is None:
            return None
        direct = cls(parsed, store, table)
        await direct.core.start_embedding_cache()
        return direct

    async def call(self, ptype: Any, name: str, method: str, args: list[Any], kwargs: dict[str, Any],
                   use_fallback: bool) -> Any:
        await self._fresh_table()
        versions = self._versions(ptype, name, use_fallback)
        try:
            result = await self.core.call(ptype, name, method, args, kwargs, use_fallback)
        except Exception as exc:
            if not (_unavailable(exc) and await self._moved(ptype, name, use_fallback, versions)):
                raise
            self.retried += 1  # sent to a version that was retired meanwhile: the current one serves
            result = await self.core.call(ptype, name, method, args, kwargs, use_fallback)
        await self._publish()
        return result

    async def describe(self, ptype: Any, name: str, use_fallback: bool) -> dict[str, Any]:
        await self._fresh_table()
        return await self.core.describe(ptype, name, use_fallback)

    # -- the table ------------------------------------------------------------------------
    async def _fresh_table(self) -> None:
        if time.monotonic() - self._read_at >= TABLE_POLL_S:
            self._read_at = time.monotonic()
            await self.core.refresh()

    def _versions(self, ptype: Any, name: str, use_fallback: bool) -> dict[str, int]:
        """The version of each provider of the call's chain, as this process's table says."""
        kind = ProviderType.parse(ptype)
        try:
            chain = self.core.chain(kind, name) if use_fallback else [name]
        except Exception:  # an unknown name: the call itself will say so
            return {}
        routes = self.core.table.routes
        return {n: r.version for n in chain if (r := routes.get(f"{kind.value}/{n}")) is not None}

    async def _moved(self, ptype: Any, name: str, use_fallback: bool, before: dict[str, int]) -> bool:
        """Re-read the table now; did a provider of the call's chain change version?"""
        self._read_at = time.monotonic()
        await self.core.refresh()
        return self._versions(ptype, name, use_fallback) != before

    # -- stats -----------------------------------------------------------------------------
    async def publish_now(self) -> None:
        """Before this process reads the cluster's stats: its own calls are in them."""
        await self._publish(force=True)

    async def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if now - self._published_at < PUBLISH_S and not force:
            return
        self._published_at = now
        try:
            await asyncio.to_thread(self.stats_store.write, self.client_id, usage_snapshot(self.core))
        except Exception:  # stats must never fail a call
            pass


def _unavailable(exc: BaseException) -> bool:
    """A provider failure (not the caller's mistake): what a retired version answers.

    The chain reports its attempts as text (`FallbackCaller`), so the version
    check in `DirectRoute.call` decides; provider calls are repeatable in this
    registry (its fallback chain repeats them on another provider already)."""
    return isinstance(exc, ProviderCallError)
