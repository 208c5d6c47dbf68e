"""The registry router: one deployment that is both the HTTP ingress and the
entry point of Python handle calls (one hop fewer than a separate ingress:
Serve's proxy costs about 4 ms of CPU per request here, so hops count).

It holds a `DeploymentHandle` per provider application, keyed by
``(type, name)`` through the route table, which it follows in Ray's GCS
(`deployments.table_store`) so that every replica, and every replacement
replica, routes the same way. Calls go through `FallbackCaller`: per-call
deadlines and the fallback chain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ray import serve

from deployments import deployer
from deployments.admin_api import AdminRoutes
from deployments.http_api import HttpRoutes, app
from deployments.logs import install_router_logging
from deployments.metrics import RouterMetrics
from deployments.observability import ObservabilityOps
from deployments.rollout import RolloutOps
from deployments.table_store import TABLE_POLL_S, StatsStore, TableStore
from deployments.graph_api import GraphRoutes
from deployments.tools_api import ToolOps, ToolRoutes
from deployments.vector_api import VectorStoreOps, VectorStoreRoutes
from providers.errors import DeploymentError, ProviderCallError, ProviderNotFoundError
from providers.registry.breaker import BreakerOptions
from providers.registry.coalescing import Coalescer
from providers.registry.embedding_cache import EmbeddingCache, cached_embed
from providers.registry.config import RegistryConfig, parse_spec
from providers.registry.limits import check_call
from providers.registry.loading import load_provider_class
from providers.registry.redaction import scrub_text, secret_values
from providers.registry.routing import FallbackCaller, describe_error
from providers.registry.results import check_result
from providers.registry.table import Route, RouteTable, route_key
from providers.types import ProviderType

logger = logging.getLogger("ray.serve")
EMBED_METHODS = frozenset({"embed_texts", "embed_query"})



class RoutedCache:
    """A cache provider of the registry, as the embedding cache's backend (through its chain and breaker)."""

    def __init__(self, router: "RegistryRouter", name: str) -> None:
        self.router, self.name = router, name

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        return await self.router._call_chain(ProviderType.CACHE, self.name, "get_many", [keys], {}, True)

    async def set_many(self, items: dict[str, Any], ttl: float | None = None) -> None:
        await self.router._call_chain(ProviderType.CACHE, self.name, "set_many", [items, ttl], {}, True)


@serve.ingress(app)
class RegistryRouter(HttpRoutes, VectorStoreRoutes, ToolRoutes, GraphRoutes, AdminRoutes, RolloutOps,
                     ObservabilityOps, VectorStoreOps, ToolOps):
    async def __init__(self, config: dict[str, Any]) -> None:
        cfg = RegistryConfig.model_validate(config)
        self.settings = cfg.registry
        self.allowed = list(self.settings.allowed_prefixes())
        self.store = TableStore(self.settings.app_name)
        self.table = await asyncio.to_thread(self.store.seed, RouteTable.from_config(cfg))
        self.metrics = RouterMetrics(breaker_state=lambda key: self.caller.breaker(key).state.value)
        self.caller = FallbackCaller(scrub=self.scrub, breaker_options=self._breaker_options,
                                     on_attempt=self.metrics.record)
        r = self.settings.router
        self.coalescer = Coalescer(self._flush_texts, r.coalesce_wait_s, r.coalesce_max_texts)
        self.embedding_cache = await self._make_embedding_cache()
        self.handles: dict[str, Any] = {}
        self.described: dict[str, dict[str, Any]] = {}
        self.health: dict[str, dict[str, Any]] = {}
        # Vector stores (vector_api): the embedding space each (route key, version) recorded,
        # read once; and one lock per store so re-embed steps of one store never overlap.
        self.spaces: dict[tuple[str, int], dict[str, Any]] = {}
        self.reembed_locks: dict[str, asyncio.Lock] = {}
        self.secrets: set[str] = set()
        self._chains: dict[tuple[ProviderType, str], list[str]] = {}
        self._lock = asyncio.Lock()
        self._monitor: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        self.stats_store = StatsStore(self.settings.app_name)
        self._install(self.table)
        install_router_logging(lambda: self.secrets)  # every log line scrubbed of the providers' secrets
        self._follower = asyncio.create_task(self._follow_table())
        self._publisher = asyncio.create_task(self._publish_stats_loop())
        self._sweeper = asyncio.create_task(self._sweep_orphans_loop())

    async def _make_embedding_cache(self) -> EmbeddingCache | None:
        opts = self.settings.embedding_cache
        if not opts.enabled:
            return None
        if opts.cache is not None:  # shared by every router replica, reached like any provider
            return EmbeddingCache(RoutedCache(self, opts.cache), opts.ttl_s, self.metrics.record_cache)
        from providers.caches.memory import MemoryCache

        local = MemoryCache()
        await local.initialize({"max_entries": opts.max_entries, "max_bytes": opts.max_bytes})
        return EmbeddingCache(local, opts.ttl_s, self.metrics.record_cache)

    # -- table ----------------------------------------------------------------
    def _install(self, table: RouteTable) -> None:
        # A new version (reload) or a removed provider starts with a closed
        # breaker: the failures it counted were another deployment's.
        for key, route in self.table.routes.items():
            new = table.routes.get(key)
            if new is None or new.version != route.version:
                self.caller.breakers.pop(key, None)
        self.table = table
        self._chains.clear()
        self.secrets = set().union(*(secret_values(r.spec.config) for r in table.routes.values()))
        want = table.monitoring
        running = self._monitor is not None and not self._monitor.done()
        if want and not running:
            self._monitor = asyncio.create_task(self._monitor_loop())
        elif not want and running:
            self._monitor.cancel()
            self._monitor = None

    async def _follow_table(self) -> None:
        while True:
            await asyncio.sleep(TABLE_POLL_S)
            try:
                await self._refresh()
            except Exception as exc:  # GCS hiccup: keep the table we have
                logger.warning("route table refresh failed: %s", exc)

    async def _refresh(self) -> None:
        revision = await self.store.aread_revision()
        if revision is not None and revision != self.table.revision:
            table = await self.store.aread()
            if table is not None:
                self._install(table)

    async def _commit(self, table: RouteTable) -> None:
        await self.store.awrite(table)
        self._install(table)

    async def _route(self, ptype: ProviderType, name: str) -> Route:
        try:
            return self.table.get(ptype, name)
        except ProviderNotFoundError:
            await self._refresh()  # registered through another replica a moment ago?
            return self.table.get(ptype, name)

    def _handle(self, route: Route) -> Any:
        app_name = deployer.app_name_of(route, self.settings.app_name)
        handle = self.handles.get(app_name)
        if handle is None:
            handle = serve.get_deployment_handle(
                deployer.PROVIDER_DEPLOYMENT_NAME, app_name, _check_exists=False
            )
            self.handles[app_name] = handle
        return handle

    def _chain(self, ptype: ProviderType, name: str) -> list[str]:
        """``name`` and its fallbacks; walked once per table revision, not per call."""
        key = (ptype, name)
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = self.table.chain(ptype, name)
        return chain

    def _breaker_options(self, key: str) -> BreakerOptions:
        route = self.table.routes.get(key)
        return route.spec.circuit_breaker if route is not None else BreakerOptions()

    def scrub(self, text: str) -> str:
        return scrub_text(text, self.secrets)

    @asynccontextmanager
    async def _mutating(self) -> AsyncIterator[None]:
        """One change of the table at a time: in this replica, and across replicas."""
        async with self._lock:
            patience = self.settings.deploy_timeout_s + 120  # a holder may be mid-deploy
            async with self.store.locked(stale_s=patience, wait_s=patience):
                await self._refresh()
                yield

    # -- calls --------------------------------------------------------------------
    async def call(self, ptype: Any, name: str, method: str, args: list[Any] | None = None,
                   kwargs: dict[str, Any] | None = None, use_fallback: bool = True) -> Any:
        """Call ``method`` on provider ``name``; on failure or deadline, its fallbacks."""
        ptype = ProviderType.parse(ptype)
        args, kwargs = list(args or []), dict(kwargs or {})
        route = await self._route(ptype, name)
        check_call(method, args, kwargs, self.settings)
        if ptype is ProviderType.EMBEDDING and method in EMBED_METHODS and len(args) == 1 and not kwargs:
            return await self.embed(name, method, args[0], use_fallback)
        await self._check_arguments(route, method, args, kwargs)  # tools' schemas, rerankers' max_candidates
        return await self._call_chain(ptype, name, method, args, kwargs, use_fallback)

    async def embed(self, name: str, method: str, payload: Any, use_fallback: bool = True,
                    chain: list[str] | None = None) -> Any:
        """``embed_texts(payload)`` or ``embed_query(payload)`` on ``name``: cache, then merge, then the model."""
        route = await self._route(ProviderType.EMBEDDING, name)
        query = method == "embed_query"
        texts = [payload] if query else list(payload)
        chain = chain or (self._chain(ProviderType.EMBEDDING, name) if use_fallback else [name])

        async def compute(missing: list[str]) -> tuple[list[Any], bool]:
            if query:
                served: list[str] = []
                vector = await self._call_chain(ProviderType.EMBEDDING, name, "embed_query", missing, {},
                                                use_fallback, chain=chain, served=served)
                return [vector], served[-1:] == [name]
            if self._mergeable(route):
                d = route.spec.deployment
                replicas = d.autoscaling_config.max_replicas if d.autoscaling_config else (d.num_replicas or 1)
                inflight = replicas * self.settings.router.coalesce_inflight_per_replica
                tagged = await self.coalescer.submit((name, tuple(chain)), missing, inflight)
                return [v for v, _ in tagged], all(by == name for _, by in tagged)
            served = []
            vectors = await self._call_chain(ProviderType.EMBEDDING, name, "embed_texts", [missing], {},
                                             use_fallback, chain=chain, served=served)
            return vectors, served[-1:] == [name]

        if self.embedding_cache is None:
            vectors, _ = await compute(texts)
        else:
            vectors = await cached_embed(self.embedding_cache, name, route.version, "q" if query else "d",
                                         texts, compute)
        return vectors[0] if query else vectors

    def _mergeable(self, route: Route) -> bool:
        """embed_texts is row-wise: merging callers' texts changes no result."""
        return self.coalescer.wait_s > 0 and route.spec.deployment.batching.enabled

    async def _flush_texts(self, key: tuple[str, tuple[str, ...]], texts: list[str], callers: int) -> list[Any]:
        """One merged embed_texts call; each vector tagged with the provider that computed it."""
        name, chain = key
        served: list[str] = []
        vectors = await self._call_chain(ProviderType.EMBEDDING, name, "embed_texts", [texts], {}, True,
                                         weight=callers, chain=list(chain), served=served)
        by = served[-1] if served else name
        return [(v, by) for v in vectors]

    async def _call_chain(self, ptype: ProviderType, name: str, method: str, args: list[Any],
                          kwargs: dict[str, Any], use_fallback: bool, weight: int = 1,
                          chain: list[str] | None = None, served: list[str] | None = None) -> Any:
        """``served``, when given, gets the name of the provider whose answer is returned."""
        chain = chain or (self._chain(ptype, name) if use_fallback else [name])

        async def attempt(candidate: str, timeout_s: float) -> Any:
            route = self.table.get(ptype, candidate)
            if ptype is ProviderType.VECTOR_STORE:
                await self._guard(route, method)
            response = self._handle(route).invoke.remote(method, args, kwargs)
            try:
                result = await response
            except asyncio.CancelledError:
                response.cancel()  # the deadline passed: free the provider replica too
                raise
            check_result(ptype, method, args, kwargs, result)  # malformed = failed: the fallback serves
            if served is not None:
                served.append(candidate)
            return result

        return await self.caller.call(
            ptype.value, chain, attempt, lambda n: self.table.get(ptype, n).spec.call_timeout_s, weight
        )

    async def describe(self, ptype: Any, name: str, use_fallback: bool = False) -> dict[str, Any]:
        """What a client proxy needs: interface, the sync getters' values, version.

        Read once per provider version (the getters are cheap and static) and
        not counted as usage. With ``use_fallback``, the first provider of the
        chain that answers describes it.
        """
        ptype = ProviderType.parse(ptype)
        await self._route(ptype, name)
        chain = self._chain(ptype, name) if use_fallback else [name]
        errors = []
        for candidate in chain:
            route = self.table.get(ptype, candidate)
            app_name = deployer.app_name_of(route, self.settings.app_name)
            try:
                if app_name not in self.described:
                    response = self._handle(route).describe.remote()
                    self.described[app_name] = await asyncio.wait_for(response, route.spec.call_timeout_s)
            except Exception as exc:
                errors.append(f"{candidate}: {self.scrub(describe_error(exc))}")
                continue
            return {**self.described[app_name], "type": ptype.value, "name": name,
                    "served_by": candidate, "version": route.version}
        raise ProviderCallError(f"cannot describe {ptype.value} provider {name!r}: " + "; ".join(errors))

    # -- registry operations --------------------------------------------------------
    async def register_provider(self, ptype: Any, name: str, class_path: str, config: dict[str, Any] | None = None,
                                metadata: dict[str, Any] | None = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
        ptype = ProviderType.parse(ptype)
        raw = {"class": class_path, "config": config or {}, "metadata": metadata or {}, **(options or {})}
        path = f"{ptype.value}.providers.{name}"
        spec = parse_spec(raw, path)
        async with self._mutating():
            route = Route(type=ptype, name=name, spec=spec, source="runtime")
            table = self.table.with_route(route)  # name taken, bad fallback: fail before deploying
            await asyncio.to_thread(load_provider_class, spec.class_path, ptype, self.allowed)
            await self._deploy(route)
            await self._commit(table)
        return {"registered": route_key(ptype, name), "version": route.version}

    async def delete_provider(self, ptype: Any, name: str) -> dict[str, Any]:
        ptype = ProviderType.parse(ptype)
        async with self._mutating():
            route = self.table.get(ptype, name)
            await self._commit(self.table.without(ptype, name))
        await self._retire(deployer.app_name_of(route, self.settings.app_name), 2 * TABLE_POLL_S)
        return {"deleted": route_key(ptype, name)}

    async def set_fallback_provider(self, ptype: Any, primary_name: str, fallback: str | list[str]) -> dict[str, Any]:
        ptype = ProviderType.parse(ptype)
        names = [fallback] if isinstance(fallback, str) else list(fallback)
        async with self._mutating():
            for n in names:
                self.table.get(ptype, n)
            await self._commit(self.table.with_fallback(ptype, primary_name, names))
        return {"primary": route_key(ptype, primary_name), "fallback": names}

    async def set_monitoring(self, on: bool) -> dict[str, Any]:
        async with self._mutating():
            await self._commit(self.table.with_monitoring(bool(on)))
        return {"monitoring": bool(on)}

    async def cleanup(self) -> dict[str, Any]:
        """Delete every provider application of this registry and its stored table."""
        async with self._mutating():
            apps = [deployer.app_name_of(r, self.settings.app_name) for r in self.table.routes.values()]
            self._install(self.table.with_monitoring(False))
            await asyncio.gather(*(deployer.delete(a) for a in apps))
            await asyncio.to_thread(self.store.clear)
            await asyncio.to_thread(self.stats_store.clear)
        return {"deleted_apps": apps}

    async def _deploy(self, route: Route) -> None:
        try:
            await deployer.deploy(route, self.settings.app_name, self.allowed,
                                  self.settings.deploy_timeout_s, self.settings.check_resources,
                                  self.settings.log_encoding)
        except DeploymentError as exc:
            raise type(exc)(self.scrub(str(exc))) from None

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._background.add(task)  # keep a reference until done (the loop holds only weak ones)
        task.add_done_callback(self._background.discard)
        return task

    def _retire_later(self, route: Route) -> None:
        # Other replicas switch within TABLE_POLL_S; Serve's delete then drains
        # the old replicas' in-flight requests (graceful_shutdown_timeout_s).
        self._spawn(self._retire(deployer.app_name_of(route, self.settings.app_name), 2 * TABLE_POLL_S + 1))

    async def _retire(self, app_name: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self.handles.pop(app_name, None)
        self.described.pop(app_name, None)
        await deployer.delete(app_name)
