"""Registering, deleting and wiring providers at run time; the change side of the router.

Every change takes the core's mutation lock (one change at a time across
router replicas), deploys what it needs as its own Serve application
(`deployments.deployer`), and only then publishes the new route table, so no
caller is ever routed to something that is not RUNNING. A retired version
keeps its replicas until every router replica has switched (`TABLE_POLL_S`),
then Serve deletes it, draining its in-flight requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from deployments import deployer
from deployments.events import EventLog
from deployments.router_core import RouterCore
from deployments.table_store import TABLE_POLL_S, StatsStore
from providers.errors import DeploymentError
from providers.registry.config import parse_spec
from providers.registry.loading import load_provider_class
from providers.registry.table import Route, route_key
from providers.types import ProviderType


class Lifecycle:
    def __init__(self, core: RouterCore, stats_store: StatsStore, events: EventLog | None = None) -> None:
        self.core = core
        self.stats_store = stats_store
        self.events = events if events is not None else EventLog("local")
        self._background: set[asyncio.Task] = set()

    async def register_provider(self, ptype: Any, name: str, class_path: str, config: dict[str, Any] | None = None,
                                metadata: dict[str, Any] | None = None,
                                options: dict[str, Any] | None = None) -> dict[str, Any]:
        ptype = ProviderType.parse(ptype)
        raw = {"class": class_path, "config": config or {}, "metadata": metadata or {}, **(options or {})}
        spec = parse_spec(raw, f"{ptype.value}.providers.{name}")
        core = self.core
        async with core.mutating():
            route = Route(type=ptype, name=name, spec=spec, source="runtime")
            table = core.table.with_route(route)  # name taken, bad fallback: fail before deploying
            await asyncio.to_thread(load_provider_class, spec.class_path, ptype, core.allowed)
            await self.deploy(route)
            await core.commit(table)
        self.events.record("registered", route.key, route.version, spec.class_path)
        return {"registered": route_key(ptype, name), "version": route.version}

    async def delete_provider(self, ptype: Any, name: str) -> dict[str, Any]:
        ptype = ProviderType.parse(ptype)
        core = self.core
        async with core.mutating():
            route = core.table.get(ptype, name)
            await core.commit(core.table.without(ptype, name))
        self.events.record("deleted", route.key, route.version)
        await self.retire(core.app_name(route), 2 * TABLE_POLL_S)
        return {"deleted": route_key(ptype, name)}

    async def set_fallback_provider(self, ptype: Any, primary_name: str,
                                    fallback: str | list[str]) -> dict[str, Any]:
        ptype = ProviderType.parse(ptype)
        names = [fallback] if isinstance(fallback, str) else list(fallback)
        core = self.core
        async with core.mutating():
            for n in names:
                core.table.get(ptype, n)
            await core.commit(core.table.with_fallback(ptype, primary_name, names))
        self.events.record("fallback_set", route_key(ptype, primary_name), detail=" -> ".join(names) or "none",
                           fallback=names)
        return {"primary": route_key(ptype, primary_name), "fallback": names}

    async def set_monitoring(self, on: bool) -> dict[str, Any]:
        async with self.core.mutating():
            await self.core.commit(self.core.table.with_monitoring(bool(on)))
        self.events.record("monitoring", detail="on" if on else "off")
        return {"monitoring": bool(on)}

    async def cleanup(self) -> dict[str, Any]:
        """Delete every provider application of this registry and its stored table."""
        core = self.core
        async with core.mutating():
            apps = [core.app_name(r) for r in core.table.routes.values()]
            core.install(core.table.with_monitoring(False))  # no probe of what is being deleted
            await asyncio.gather(*(deployer.delete(a) for a in apps))
            await asyncio.to_thread(core.store.clear)
            await asyncio.to_thread(self.stats_store.clear)
            await asyncio.to_thread(self.events.clear)
        return {"deleted_apps": apps}

    # -- deploying and retiring versions ---------------------------------------------------
    async def deploy(self, route: Route, replacing: Route | None = None) -> None:
        """Deploy ``route`` and wait until it runs; ``replacing`` runs beside it meanwhile."""
        s = self.core.settings
        try:
            await deployer.deploy(route, s.app_name, self.core.allowed, s.deploy_timeout_s, s.check_resources,
                                  s.log_encoding, replacing)
        except DeploymentError as exc:
            raise type(exc)(self.core.scrub(str(exc))) from None

    def spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._background.add(task)  # keep a reference until done (the loop holds only weak ones)
        task.add_done_callback(self._background.discard)
        return task

    def retire_later(self, route: Route) -> None:
        # Other replicas switch within TABLE_POLL_S; Serve's delete then drains
        # the old replicas' in-flight requests (graceful_shutdown_timeout_s).
        self.spawn(self.retire(self.core.app_name(route), 2 * TABLE_POLL_S + 1))

    async def retire(self, app_name: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self.core.forget(app_name)
        await deployer.delete(app_name)
