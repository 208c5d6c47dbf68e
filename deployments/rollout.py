"""Hot swap, reload and rollback of one provider, without dropping a request.

A part of the router, given the core, the lifecycle (deploy, retire) and the
health probe. The sequence:
deploy the new version as its own Serve application beside the old one ->
wait until RUNNING -> its health check must pass -> flip the route table
(every router replica follows within `TABLE_POLL_S`) -> the old version
keeps its replicas until every router has switched, then Serve deletes it,
draining in-flight requests (``graceful_shutdown_timeout_s``). A version
that fails to start or fails its health check is never flipped to.

After a swap the replica that made it watches the new version for
``rollout.watch_s``: a failure share of ``rollout.error_rate`` (after
``rollout.min_calls`` calls) rolls back to the spec it replaced. Neither Ray
Serve (RFC #63016) nor the original registry does this.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from deployments import deployer
from deployments.events import EventLog
from deployments.lifecycle import Lifecycle
from deployments.logs import app_log, provider_log
from deployments.observability import Observability
from deployments.router_core import RouterCore
from providers.errors import ConfigError, DeploymentError
from providers.registry.config import parse_spec
from providers.registry.loading import load_provider_class
from providers.registry.routing import describe_error
from providers.registry.table import Route, route_key
from providers.types import ProviderType

logger = logging.getLogger("ray.serve")

WATCH_PERIOD_S = 0.5
SWEEP_PERIOD_S = 5.0


class Rollout:
    def __init__(self, core: RouterCore, lifecycle: Lifecycle, health: Observability,
                 events: EventLog | None = None) -> None:
        self.core = core
        self.lifecycle = lifecycle
        self.health = health
        self.events = events if events is not None else lifecycle.events

    async def reload_provider(self, ptype: Any, name: str) -> dict[str, Any]:
        """Redeploy the current class and config as a new version, then switch to it."""
        return await self.swap_provider(ptype, name, {}, watch=False)

    async def swap_provider(self, ptype: Any, name: str, changes: dict[str, Any] | None = None,
                            watch: bool = True) -> dict[str, Any]:
        """A new version under the same name: ``changes`` are providers.yaml keys
        (``class``, ``config``, ``deployment``, ...) replacing the current ones."""
        ptype = ProviderType.parse(ptype)
        async with self.core.mutating():
            old = self.core.table.get(ptype, name)
            raw = {**old.spec.model_dump(mode="json", by_alias=True), **(changes or {})}
            spec = parse_spec(raw, f"{ptype.value}.providers.{name}")
            # A reload (same spec) keeps the rollback target: rolling back after
            # it means the last *different* spec, not the one just reloaded.
            previous = old.previous if spec == old.spec else old.spec
            kind = "reloaded" if spec == old.spec else "swapped"
            try:
                new = await self._roll_out(old, Route(type=ptype, name=name, spec=spec, version=old.version + 1,
                                                      source="runtime", previous=previous))
            except Exception as exc:
                self.events.record("swap_failed" if kind == "swapped" else "reload_failed", old.key,
                                   old.version + 1, describe_error(exc), serving_version=old.version)
                raise
        self.events.record(kind, new.key, new.version, f"v{old.version} -> v{new.version}",
                           previous_version=old.version, changed=sorted(changes or {}))
        if watch and self.core.settings.rollout.auto_rollback and changes:
            self.lifecycle.spawn(self._watch(new))
        return {"provider": route_key(ptype, name), "version": new.version, "previous_version": old.version}

    async def rollback_provider(self, ptype: Any, name: str, reason: str = "requested",
                                automatic: bool = False) -> dict[str, Any]:
        """Back to the spec the current version replaced (as a new version number);
        ``automatic`` when the swap's watcher decided it (the event log says which)."""
        ptype = ProviderType.parse(ptype)
        async with self.core.mutating():
            current = self.core.table.get(ptype, name)
            if current.previous is None:
                raise ConfigError(f"{current.key} has no previous version to roll back to")
            back = Route(type=ptype, name=name, spec=current.previous, version=current.version + 1,
                         source=current.source, previous=current.spec)
            try:
                await self._roll_out(current, back)
            except Exception as exc:
                self.events.record("rollback_failed", current.key, back.version, describe_error(exc),
                                   automatic=automatic, serving_version=current.version)
                raise
        self.events.record("rolled_back", current.key, back.version, reason, automatic=automatic,
                           previous_version=current.version)
        provider_log(logger, logging.WARNING, "rolled back from v%d to its previous spec: %s", current.version,
                     self.core.scrub(reason), ptype=ptype, name=name, version=back.version)
        return {"provider": current.key, "version": back.version, "rolled_back_from": current.version, "reason": reason}

    async def _roll_out(self, old: Route, new: Route) -> Route:
        """Deploy ``new`` beside ``old``, check it, flip, retire ``old``. Caller holds the lock."""
        await asyncio.to_thread(load_provider_class, new.spec.class_path, new.type, self.core.allowed)
        table = self.core.table.with_route(new, replace=True)  # bad fallback names fail before deploying
        await self.lifecycle.deploy(new, replacing=old)
        report = await self.health.health_of(new)
        if report.get("status") != "healthy":
            await deployer.delete(self.core.app_name(new))
            raise DeploymentError(
                f"{new.key} v{new.version} failed its health check and was not switched to "
                f"(v{old.version} keeps serving): {report.get('error') or report}")
        await self.core.commit(table)
        self.lifecycle.retire_later(old)
        return new

    async def _watch(self, route: Route) -> None:
        """Roll back ``route`` if its failure share crosses the threshold while watched."""
        opts = self.core.settings.rollout
        usage = self.core.caller.usage(route.key)
        calls0, failures0 = usage.calls, usage.failures
        loop = asyncio.get_running_loop()
        end = loop.time() + opts.watch_s
        while loop.time() < end:
            await asyncio.sleep(WATCH_PERIOD_S)
            current = self.core.table.routes.get(route.key)
            if current is None or current.version != route.version:
                return  # replaced or deleted meanwhile
            calls, failures = usage.calls - calls0, usage.failures - failures0
            if calls >= opts.min_calls and failures / calls >= opts.error_rate:
                reason = f"{failures} of {calls} calls failed within {opts.watch_s:g}s of the swap"
                try:
                    await self.rollback_provider(route.type, route.name, reason=reason, automatic=True)
                except Exception as exc:  # the watcher must never crash the router
                    provider_log(logger, logging.ERROR, "automatic rollback failed: %s",
                                 self.core.scrub(describe_error(exc)), ptype=route.type, name=route.name,
                                 version=route.version)
                return

    # -- orphans --------------------------------------------------------------------------
    async def sweep_orphans_loop(self) -> None:
        """Delete provider applications of this registry that no route names.

        They appear when a router replica dies between deploying a new
        version and switching to it, or before retiring the old one. An
        application is deleted only after ``orphan_grace_s`` unnamed and
        under the mutation lock, so a rollout in progress (which holds the
        lock while its new version is not yet named) is never touched.
        """
        first_seen: dict[str, float] = {}
        while True:
            await asyncio.sleep(SWEEP_PERIOD_S)
            try:
                await self._sweep_orphans(first_seen)
            except Exception as exc:  # sweeping must never hurt serving
                logger.warning("orphan sweep failed: %s", exc)

    async def _sweep_orphans(self, first_seen: dict[str, float]) -> list[str]:
        prefix = f"{self.core.settings.app_name}--"
        apps = (await asyncio.to_thread(deployer.serve_status, SWEEP_PERIOD_S)).applications
        unnamed = {a for a in apps if a.startswith(prefix)} - self._named_apps()
        now = asyncio.get_running_loop().time()
        for app in set(first_seen) - unnamed:
            del first_seen[app]
        due = [a for a in unnamed if now - first_seen.setdefault(a, now) >= self.core.settings.orphan_grace_s]
        deleted = []
        if due:
            async with self.core.mutating():
                for app in set(due) - self._named_apps():
                    app_log(logger, logging.WARNING, "deleting orphaned provider application %s", app, app_name=app)
                    await deployer.delete(app)
                    first_seen.pop(app, None)
                    deleted.append(app)
        return deleted

    def _named_apps(self) -> set[str]:
        return {self.core.app_name(r) for r in self.core.table.routes.values()}
