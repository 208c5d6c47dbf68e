"""Health probes, listings and cluster-wide statistics of the router.

A part of the router, given the core. Each router replica counts
its own calls and publishes a snapshot to GCS every `STATS_PUBLISH_S`
(`deployments.table_store.StatsStore`); `get_stats` sums every replica's
snapshot, so the figures are the cluster's whichever replica answers.
Health probes are not counted as usage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from deployments import deployer
from deployments.events import EventLog
from deployments.names import PROVIDER_DEPLOYMENT_NAME
from deployments.router_core import RouterCore
from deployments.table_store import StatsStore
from providers.registry.redaction import redact
from providers.registry.routing import describe_error
from providers.registry.stats import describe, merge_usage
from providers.registry.table import Route
from providers.types import ProviderType

logger = logging.getLogger("ray.serve")

STATS_PUBLISH_S = 1.0
# Replica counts in get_stats may be this old (Serve status is costly; see deployer.serve_status).
REPLICA_COUNTS_MAX_AGE_S = 1.0
_SEVERITY = {"closed": 0, "half_open": 1, "open": 2}


MONITOR_POLL_S = 0.5  # how soon switching monitoring on starts probing


def usage_snapshot(core: Any) -> dict[str, Any]:
    """What one routing core (a router replica, or a direct Python caller) publishes
    into the cluster-wide stats: usage, breakers, merging, the embedding cache."""
    return {
        "at": time.time(),
        "usage": {k: v.snapshot() for k, v in core.caller.stats.items()},
        "breakers": {k: b.snapshot() for k, b in core.caller.breakers.items()},
        "coalescing": {"provider_calls": core.coalescer.flushes, "caller_calls": core.coalescer.merged_calls},
        "embedding_cache": core.embedding_cache.stats() if core.embedding_cache is not None else None,
    }


class Observability:
    def __init__(self, core: RouterCore, stats_store: StatsStore, replica_id: str,
                 events: EventLog | None = None) -> None:
        self.core = core
        self.stats_store = stats_store
        self.replica_id = replica_id
        self.events = events if events is not None else EventLog(replica_id)
        self.health: dict[str, dict[str, Any]] = {}  # route key -> its last probe's report

    # -- health ------------------------------------------------------------------------
    async def health_check(self, ptype: Any, name: str) -> dict[str, Any]:
        ptype = ProviderType.parse(ptype)
        return await self.health_of(await self.core.route(ptype, name))

    async def health_of(self, route: Route) -> dict[str, Any]:
        """Probe one provider; an unhealthy answer opens its breaker at once.

        Failover must not wait for Ray, whose replica checks take 30 s to
        2 minutes to act.
        """
        start = time.monotonic()
        try:
            response = self.core.handle(route).invoke.remote("health_check")
            report = await asyncio.wait_for(response, route.spec.call_timeout_s)
            if not isinstance(report, dict) or "status" not in report:
                report = {"status": "unhealthy", "error": f"malformed health report: {report!r}"[:300]}
        except asyncio.TimeoutError:
            report = {"status": "unhealthy", "error": f"health check missed its {route.spec.call_timeout_s:g}s deadline"}
        except Exception as exc:
            report = {"status": "unhealthy", "error": describe_error(exc)}
        report = redact({**report, "provider": route.key, "version": route.version})
        if "error" in report:
            report["error"] = self.core.scrub(str(report["error"]))
        previous = self.health.get(route.key, {})
        report["checked_at"] = time.time()
        report["probe_ms"] = round((time.monotonic() - start) * 1000, 3)
        if report.get("status") == "healthy":
            report["last_success_at"] = report["checked_at"]
            self.core.caller.breaker(route.key).probe_healthy()
        else:
            report["last_success_at"] = previous.get("last_success_at")
            self.core.caller.breaker(route.key).open(f"health check: {report.get('error') or report.get('status')}")
        self.health[route.key] = report
        self._record_health_change(route, previous.get("status"), report)
        return report

    def _record_health_change(self, route: Route, before: str | None, report: dict[str, Any]) -> None:
        """An event when a provider's health changes; a first probe that finds it
        healthy is no news (every new version gets one before it serves)."""
        now = report.get("status")
        if now == before or (before is None and now == "healthy"):
            return
        self.events.record("health_changed", route.key, route.version, report.get("error"),
                           status=now, previous_status=before or "unknown")

    async def monitor_loop(self) -> None:
        """Probe every provider each ``health_check_interval_s`` while the table says
        monitoring is on (a flag every router replica follows with the table)."""
        loop = asyncio.get_running_loop()
        due = 0.0
        while True:
            if not self.core.table.monitoring:
                due = 0.0
            elif loop.time() >= due:
                routes = list(self.core.table.routes.values())
                await asyncio.gather(*(self.health_of(r) for r in routes))
                due = loop.time() + self.core.settings.health_check_interval_s
            await asyncio.sleep(MONITOR_POLL_S)

    # -- statistics ----------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        return usage_snapshot(self.core)

    async def publish_stats_loop(self) -> None:
        while True:
            await asyncio.sleep(STATS_PUBLISH_S)
            try:
                await asyncio.to_thread(self.stats_store.write, self.replica_id, self._snapshot())
            except Exception as exc:  # stats must never hurt serving
                logger.warning("publishing router stats failed: %s", exc)

    async def _cluster_snapshots(self) -> dict[str, dict[str, Any]]:
        """Every router replica's latest snapshot; this replica's is fresh."""
        mine = self._snapshot()
        try:
            await asyncio.to_thread(self.stats_store.write, self.replica_id, mine)
            snaps = await asyncio.to_thread(self.stats_store.read_all)
        except Exception as exc:
            logger.warning("reading cluster stats failed, showing this replica only: %s", exc)
            snaps = {}
        snaps[self.replica_id] = mine
        return snaps

    async def _replica_counts(self) -> dict[str, int]:
        """RUNNING replicas per provider application (from Serve's status)."""
        try:
            status = await asyncio.to_thread(deployer.serve_status, REPLICA_COUNTS_MAX_AGE_S)
        except Exception:
            return {}
        out = {}
        for name, app in status.applications.items():
            dep = app.deployments.get(PROVIDER_DEPLOYMENT_NAME)
            if dep is not None:
                out[name] = int(dep.replica_states.get("RUNNING", 0))
        return out

    async def get_stats(self) -> dict[str, Any]:
        snaps = await self._cluster_snapshots()
        replicas = await self._replica_counts()
        counts = {t.value: len(self.core.table.names(t)) for t in ProviderType}
        summary = {"healthy": 0, "unhealthy": 0, "unknown": 0}
        providers: dict[str, Any] = {}
        for key, route in sorted(self.core.table.routes.items()):
            status = self.health.get(key, {}).get("status", "unknown")
            summary[status if status in summary else "unhealthy"] += 1
            usage = describe(merge_usage([s["usage"][key] for s in snaps.values() if key in s["usage"]]))
            breakers = {rid: s["breakers"][key] for rid, s in snaps.items() if key in s.get("breakers", {})}
            worst = max((b["state"] for b in breakers.values()), key=_SEVERITY.get, default="closed")
            providers[key] = {
                **usage,
                "circuit_breaker": {"state": worst, "per_router_replica": breakers},
                "health_status": status,
                "version": route.version,
                "replicas": replicas.get(self.core.app_name(route)),
            }
        merged = {"provider_calls": 0, "caller_calls": 0}
        for s in snaps.values():
            for k in merged:
                merged[k] += s.get("coalescing", {}).get(k, 0)
        cache = {"hits": 0, "misses": 0, "errors": 0}
        for snap in snaps.values():
            for k in cache:
                cache[k] += (snap.get("embedding_cache") or {}).get(k, 0)
        lookups = cache["hits"] + cache["misses"]
        cache["hit_ratio"] = round(cache["hits"] / lookups, 4) if lookups else None
        cache["enabled"] = self.core.embedding_cache is not None
        return {
            "provider_counts": counts,
            "embedding_cache": cache,
            "health_summary": summary,
            "usage_stats": providers,
            "monitoring": self.core.table.monitoring,
            "coalescing": merged,
            "table_revision": self.core.table.revision,
            "scope": {"router_replicas": sorted(snaps), "answered_by": self.replica_id},
        }

    # -- listing ------------------------------------------------------------------------------
    async def list_providers(self, ptype: Any = None, include_instances: bool = False) -> dict[str, Any]:
        types = [ProviderType.parse(ptype)] if ptype else list(ProviderType)
        out: dict[str, Any] = {t.value: {} for t in types}
        snaps = (await self._cluster_snapshots()).values()
        for route in self.core.table.routes.values():
            if route.type not in types:
                continue
            health = self.health.get(route.key, {})
            info = {
                "class": route.spec.class_path,
                "config": redact(route.spec.config),
                "metadata": redact(route.spec.metadata),
                "fallback": route.spec.fallback,
                "depends_on": route.spec.depends_on,
                "deployment": route.spec.deployment.model_dump(mode="json", exclude_none=True),
                "call_timeout_s": route.spec.call_timeout_s,
                "version": route.version,
                "source": route.source,
                "has_previous": route.previous is not None,
                "app_name": self.core.app_name(route),
                "health_status": health.get("status", "unknown"),
                "usage_count": sum(s["usage"].get(route.key, {}).get("calls", 0) for s in snaps),
                "circuit_breaker": self.core.caller.breaker(route.key).snapshot(),
                "initialized": True,  # in the table only once its application ran
            }
            if include_instances:
                try:
                    info["instance"] = await self.core.describe(route.type, route.name)
                except Exception as exc:
                    info["instance"] = {"error": self.core.scrub(f"{type(exc).__name__}: {exc}")}
            out[route.type.value][route.name] = info
        return out
