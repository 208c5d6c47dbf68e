"""The registry router: the class Ray Serve runs, a thin shell that wires the parts.

One deployment is both the HTTP ingress and the entry point of Python handle
calls (one hop fewer than a separate ingress: Serve's proxy costs about 4 ms
of CPU per request here, so hops count). The parts, each given what it uses
in its constructor:

- `RouterCore` (router_core): route table followed in GCS, handles, the call
  chain (limits, guards, deadlines, breakers, fallbacks, answer checks),
  embedding cache and merging;
- `Lifecycle` (lifecycle): register, delete, fallbacks, monitoring, cleanup;
- `Rollout` (rollout): swap, reload, rollback, watch, orphan sweep;
- `Applier` (applier): apply a providers.yaml, planned by `apply_plan`;
- `Observability` (observability): health probes, stats, listings;
- `VectorStores` (vector_api): text through a store's embedder, re-embed;
- `EventLog` (events): what changed and when, cluster-wide, given to the
  parts that make the changes and to the breakers;
- guards given to the core: `ArgumentGuard` (tools_api), `SpaceGuard`
  (vector_space_guard);
- the HTTP app, built by `build_http_app` when Serve asks for it, with the
  MCP server at ``/mcp`` (`mcp_server`: the tools over the same call chain).

The methods below are the router's Python API (what `deployments.client`
and `DeploymentHandle` callers reach); each delegates to one part.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from ray import serve

from deployments.applier import Applier
from deployments.events import EventLog, EventStore, parse_query
from deployments.http_app import build_http_app
from deployments.lifecycle import Lifecycle
from deployments.liveness import provider_liveness
from deployments.logs import install_router_logging
from deployments.metrics import RouterMetrics
from deployments.observability import Observability
from deployments.rollout import Rollout
from deployments.router_core import RouterCore
from deployments.table_store import StatsStore, TableStore
from deployments.tools_api import ArgumentGuard, list_tools
from deployments.vector_api import VectorStores
from deployments.vector_space_guard import SpaceGuard
from providers.registry.config import RegistryConfig
from providers.registry.table import RouteTable


@serve.ingress()  # the app comes from __serve_build_asgi_app__, once the parts exist
class RegistryRouter:
    async def __init__(self, config: dict[str, Any]) -> None:
        cfg = RegistryConfig.model_validate(config)
        settings = cfg.registry
        store = TableStore(settings.app_name)
        table = await asyncio.to_thread(store.seed, RouteTable.from_config(cfg))
        metrics = RouterMetrics()
        replica_id = serve.get_replica_context().replica_id.unique_id
        # scrub late-bound: the core that knows the secrets is made next, and needs the log's hook.
        self.events = events = EventLog(replica_id, EventStore(settings.app_name),
                                        scrub=lambda text: self.core.scrub(text))
        self.core = core = RouterCore(settings, store, table, guards=[ArgumentGuard(), SpaceGuard()],
                                      on_attempt=metrics.record, on_cache=metrics.record_cache,
                                      on_breaker=events.on_breaker)
        core.caller.liveness = provider_liveness(core)  # late calls ask whether anything is alive
        events.version_of = lambda key: getattr(core.table.routes.get(key), "version", None)
        metrics.breaker_state = lambda key: core.caller.breaker(key).state.value
        await core.start_embedding_cache()
        stats_store = StatsStore(settings.app_name)
        self.observability = Observability(core, stats_store, replica_id, events)
        self.lifecycle = Lifecycle(core, stats_store, events)
        self.rollout = Rollout(core, self.lifecycle, self.observability, events)
        self.vectors = VectorStores(core, self.lifecycle, self.rollout)
        self.applier = Applier(core, self.lifecycle, self.rollout)
        install_router_logging(lambda: core.secrets)  # every log line scrubbed of the providers' secrets
        self._tasks = [asyncio.create_task(loop) for loop in (
            core.follow_table(), self.observability.publish_stats_loop(), self.observability.monitor_loop(),
            self.rollout.sweep_orphans_loop(), events.publish_loop())]

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_http_app(self.core, observability=self.observability, lifecycle=self.lifecycle,
                              rollout=self.rollout, vectors=self.vectors, applier=self.applier,
                              events=self.events)

    # -- calls ------------------------------------------------------------------------------
    async def call(self, ptype: Any, name: str, method: str, args: list[Any] | None = None,
                   kwargs: dict[str, Any] | None = None, use_fallback: bool = True) -> Any:
        return await self.core.call(ptype, name, method, args, kwargs, use_fallback)

    async def describe(self, ptype: Any, name: str, use_fallback: bool = False) -> dict[str, Any]:
        return await self.core.describe(ptype, name, use_fallback)

    async def client_settings(self) -> dict[str, Any]:
        """The registry's settings, for a Python caller that routes its calls itself (`deployments.direct`)."""
        return self.core.settings.model_dump(mode="json", by_alias=True)

    async def list_tools(self) -> list[dict[str, Any]]:
        return await list_tools(self.core)

    # -- changes ----------------------------------------------------------------------------
    async def register_provider(self, ptype: Any, name: str, class_path: str, config: dict[str, Any] | None = None,
                                metadata: dict[str, Any] | None = None,
                                options: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.lifecycle.register_provider(ptype, name, class_path, config, metadata, options)

    async def delete_provider(self, ptype: Any, name: str) -> dict[str, Any]:
        return await self.lifecycle.delete_provider(ptype, name)

    async def set_fallback_provider(self, ptype: Any, primary_name: str,
                                    fallback: str | list[str]) -> dict[str, Any]:
        return await self.lifecycle.set_fallback_provider(ptype, primary_name, fallback)

    async def set_monitoring(self, on: bool) -> dict[str, Any]:
        return await self.lifecycle.set_monitoring(on)

    async def cleanup(self) -> dict[str, Any]:
        return await self.lifecycle.cleanup()

    async def reload_provider(self, ptype: Any, name: str) -> dict[str, Any]:
        return await self.rollout.reload_provider(ptype, name)

    async def swap_provider(self, ptype: Any, name: str, changes: dict[str, Any] | None = None,
                            watch: bool = True) -> dict[str, Any]:
        return await self.rollout.swap_provider(ptype, name, changes, watch)

    async def rollback_provider(self, ptype: Any, name: str, reason: str = "requested") -> dict[str, Any]:
        return await self.rollout.rollback_provider(ptype, name, reason)

    async def apply_config(self, config: dict[str, Any], dry_run: bool = False,
                           prune: bool = False) -> dict[str, Any]:
        return await self.applier.apply(config, dry_run, prune)

    async def reembed_step(self, name: str, embedder: str | None = None, target: str | None = None,
                           batch_size: int = 256) -> dict[str, Any]:
        return await self.vectors.reembed_step(name, embedder, target, batch_size)

    async def reembed_abort(self, name: str) -> dict[str, Any]:
        return await self.vectors.reembed_abort(name)

    # -- reading ----------------------------------------------------------------------------
    async def health_check(self, ptype: Any, name: str) -> dict[str, Any]:
        return await self.observability.health_check(ptype, name)

    async def get_stats(self) -> dict[str, Any]:
        return await self.observability.get_stats()

    async def get_events(self, since: float | None = None, limit: int = 100) -> dict[str, Any]:
        since, limit = parse_query(None if since is None else str(since), str(limit))  # the HTTP route's checks
        return await self.events.read(since, limit)

    async def list_providers(self, ptype: Any = None, include_instances: bool = False) -> dict[str, Any]:
        return await self.observability.list_providers(ptype, include_instances)
