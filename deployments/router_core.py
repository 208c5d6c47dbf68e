"""The routing core: what every call through the registry passes.

It holds the route table (followed in Ray's GCS through `TableStore`, so every
router replica, and every replacement, routes the same way), one deployment
handle per provider application, and the call chain: limits, pre-call guards,
per-call deadlines, breakers and the fallback chain (`FallbackCaller`), the
answer check, and for embeddings the cache and the merging of concurrent
callers' texts (`Coalescer`).

The parts of the router (rollout, observability, vector stores, tools, HTTP)
receive this object as a constructor argument; nothing here knows them. What
a part adds to every call it adds as a *guard* (`Guard`), given to the core's
constructor. Nothing here needs a Serve replica either: the handle factory is
an argument, so the same core can route from any process attached to Ray.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from deployments.names import PROVIDER_DEPLOYMENT_NAME
from deployments.read_merging import ReadMerger
from deployments.table_store import TABLE_POLL_S, TableStore
from providers.errors import ProviderCallError, ProviderNotFoundError
from providers.registry.breaker import BreakerOptions
from providers.registry.coalescing import Coalescer
from providers.registry.config import RegistrySettings
from providers.registry.embedding_cache import EmbeddingCache, cached_embed
from providers.registry.limits import check_call
from providers.registry.redaction import scrub_text, secret_values
from providers.registry.results import check_result
from providers.registry.routing import FallbackCaller, describe_error
from providers.registry.table import Route, RouteTable, provider_app_name
from providers.types import ProviderType

logger = logging.getLogger("ray.serve")
EMBED_METHODS = frozenset({"embed_texts", "embed_query"})


class Guard(Protocol):
    """A check the core runs on calls; a part of the router supplies it.

    ``before_call`` runs once per call, before the fallback chain (argument
    checks that need the provider's own answers: tool schemas, a reranker's
    candidate limit). ``before_attempt`` runs before each provider of the
    chain is tried (the vector stores' embedding-space guard). Either may
    raise a `RegistryError` to refuse; both receive the core.
    """

    async def before_call(self, core: RouterCore, route: Route, method: str, args: list[Any],
                          kwargs: dict[str, Any]) -> None: ...

    async def before_attempt(self, core: RouterCore, route: Route, method: str) -> None: ...


def serve_handle(app_name: str) -> Any:
    """The provider deployment's handle in application ``app_name`` (Ray Serve)."""
    from ray import serve

    return serve.get_deployment_handle(PROVIDER_DEPLOYMENT_NAME, app_name, _check_exists=False)


def _no_record(*args: Any) -> None:
    return None


class RouterCore:
    def __init__(self, settings: RegistrySettings, store: TableStore, table: RouteTable, *,
                 guards: list[Guard] | tuple[Guard, ...] = (),
                 handle_of: Callable[[str], Any] = serve_handle,
                 on_attempt: Callable[[str, str, float, int, bool], None] = _no_record,
                 on_cache: Callable[[int, int, int], None] = _no_record,
                 on_breaker: Callable[[str, str, str | None], None] | None = None) -> None:
        """``on_attempt(key, outcome, ms, weight, as_fallback)`` and ``on_cache(hits,
        misses, errors)`` see every provider attempt and cache lookup (metrics);
        ``on_breaker(key, state, reason)`` every breaker transition (the event log)."""
        self.settings = settings
        self.allowed = list(settings.allowed_prefixes())
        self.store = store
        self.table = table
        self.guards = list(guards)
        self.handle_of = handle_of
        self.on_cache = on_cache
        self.caller = FallbackCaller(scrub=self.scrub, breaker_options=self._breaker_options,
                                     retry_after_s=settings.router.retry_after_s,
                                     on_attempt=on_attempt, on_breaker=on_breaker)
        r = settings.router
        self.coalescer = Coalescer(self._flush_texts, r.coalesce_wait_s, r.coalesce_max_texts)
        self.reads = ReadMerger(self)
        self.embedding_cache: EmbeddingCache | None = None  # set by `start_embedding_cache`
        self.handles: dict[str, Any] = {}
        self.described: dict[str, dict[str, Any]] = {}  # app name -> the provider's describe()
        self.secrets: set[str] = set()
        self._chains: dict[tuple[ProviderType, str], list[str]] = {}
        self._lock = asyncio.Lock()
        self.install(table)

    async def start_embedding_cache(self) -> None:
        """The cache of embeddings: a cache provider of the registry (shared by every
        router replica, reached like any provider) or an in-process LRU."""
        opts = self.settings.embedding_cache
        if not opts.enabled:
            return
        if opts.cache is not None:
            self.embedding_cache = EmbeddingCache(RoutedCache(self, opts.cache), opts.ttl_s, self.on_cache)
            return
        from providers.caches.memory import MemoryCache

        local = MemoryCache()
        await local.initialize({"max_entries": opts.max_entries, "max_bytes": opts.max_bytes})
        self.embedding_cache = EmbeddingCache(local, opts.ttl_s, self.on_cache)

    # -- the table --------------------------------------------------------------------
    def install(self, table: RouteTable) -> None:
        # A new version (reload) or a removed provider starts with a closed
        # breaker: the failures it counted were another deployment's.
        for key, route in self.table.routes.items():
            new = table.routes.get(key)
            if new is None or new.version != route.version:
                self.caller.breakers.pop(key, None)
        self.table = table
        self._chains.clear()
        self.secrets = set().union(*(secret_values(r.spec.config) for r in table.routes.values()))

    async def follow_table(self) -> None:
        """Re-read the table whenever another replica changed it (run as a task)."""
        while True:
            await asyncio.sleep(TABLE_POLL_S)
            try:
                await self.refresh()
            except Exception as exc:  # GCS hiccup: keep the table we have
                logger.warning("route table refresh failed: %s", exc)

    async def refresh(self) -> None:
        revision = await self.store.aread_revision()
        if revision is not None and revision != self.table.revision:
            table = await self.store.aread()
            if table is not None:
                self.install(table)

    async def commit(self, table: RouteTable) -> None:
        """Publish ``table`` (call inside `mutating`)."""
        await self.store.awrite(table)
        self.install(table)

    @asynccontextmanager
    async def mutating(self) -> AsyncIterator[None]:
        """One change of the table at a time: in this replica, and across replicas."""
        async with self._lock:
            patience = self.settings.deploy_timeout_s + 120  # a holder may be mid-deploy
            async with self.store.locked(stale_s=patience, wait_s=patience):
                await self.refresh()
                yield

    async def route(self, ptype: ProviderType, name: str) -> Route:
        try:
            return self.table.get(ptype, name)
        except ProviderNotFoundError:
            await self.refresh()  # registered through another replica a moment ago?
            return self.table.get(ptype, name)

    def app_name(self, route: Route) -> str:
        return provider_app_name(self.settings.app_name, route.type, route.name, route.version)

    def handle(self, route: Route) -> Any:
        app_name = self.app_name(route)
        handle = self.handles.get(app_name)
        if handle is None:
            handle = self.handles[app_name] = self.handle_of(app_name)
        return handle

    def forget(self, app_name: str) -> None:
        """Drop what is held for a retired application."""
        self.handles.pop(app_name, None)
        self.described.pop(app_name, None)

    def chain(self, ptype: ProviderType, name: str) -> list[str]:
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

    async def invoke(self, route: Route, method: str, *args: Any, **kwargs: Any) -> Any:
        """One call of one provider, outside the chain and its breaker (reads the
        router makes for itself: recorded spaces, staging copies), within its deadline."""
        response = self.handle(route).invoke.remote(method, list(args), kwargs)
        return await asyncio.wait_for(response, route.spec.call_timeout_s)

    # -- calls ----------------------------------------------------------------------------
    async def call(self, ptype: Any, name: str, method: str, args: list[Any] | None = None,
                   kwargs: dict[str, Any] | None = None, use_fallback: bool = True) -> Any:
        """Call ``method`` on provider ``name``; on failure or deadline, its fallbacks."""
        ptype = ProviderType.parse(ptype)
        args, kwargs = list(args or []), dict(kwargs or {})
        route = await self.route(ptype, name)
        check_call(method, args, kwargs, self.settings)
        if ptype is ProviderType.EMBEDDING and method in EMBED_METHODS and len(args) == 1 and not kwargs:
            return await self.embed(name, method, args[0], use_fallback)
        for guard in self.guards:
            await guard.before_call(self, route, method, args, kwargs)
        if self.reads.merges(route, method):  # concurrent reads of it share one provider call
            return await self.reads.call(route, method, args, kwargs, use_fallback)
        return await self.call_chain(ptype, name, method, args, kwargs, use_fallback)

    async def embed(self, name: str, method: str, payload: Any, use_fallback: bool = True,
                    chain: list[str] | None = None) -> Any:
        """``embed_texts(payload)`` or ``embed_query(payload)`` on ``name``: cache, then merge, then the model."""
        route = await self.route(ProviderType.EMBEDDING, name)
        query = method == "embed_query"
        texts = [payload] if query else list(payload)
        chain = chain or (self.chain(ProviderType.EMBEDDING, name) if use_fallback else [name])

        async def compute(missing: list[str]) -> tuple[list[Any], bool]:
            if query:
                served: list[str] = []
                vector = await self.call_chain(ProviderType.EMBEDDING, name, "embed_query", missing, {},
                                               use_fallback, chain=chain, served=served)
                return [vector], served[-1:] == [name]
            if self._mergeable(route):
                d = route.spec.deployment
                replicas = d.autoscaling_config.max_replicas if d.autoscaling_config else (d.num_replicas or 1)
                inflight = replicas * self.settings.router.coalesce_inflight_per_replica
                tagged = await self.coalescer.submit((name, tuple(chain)), missing, inflight)
                return [v for v, _ in tagged], all(by == name for _, by in tagged)
            served = []
            vectors = await self.call_chain(ProviderType.EMBEDDING, name, "embed_texts", [missing], {},
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
        vectors = await self.call_chain(ProviderType.EMBEDDING, name, "embed_texts", [texts], {}, True,
                                        weight=callers, chain=list(chain), served=served)
        by = served[-1] if served else name
        return [(v, by) for v in vectors]

    async def call_chain(self, ptype: ProviderType, name: str, method: str, args: list[Any],
                         kwargs: dict[str, Any], use_fallback: bool, weight: int = 1,
                         chain: list[str] | None = None, served: list[str] | None = None) -> Any:
        """``served``, when given, gets the name of the provider whose answer is returned."""
        chain = chain or (self.chain(ptype, name) if use_fallback else [name])

        async def attempt(candidate: str, timeout_s: float) -> Any:
            route = self.table.get(ptype, candidate)
            for guard in self.guards:
                await guard.before_attempt(self, route, method)
            response = self.handle(route).invoke.remote(method, args, kwargs)
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
        await self.route(ptype, name)
        chain = self.chain(ptype, name) if use_fallback else [name]
        errors = []
        for candidate in chain:
            route = self.table.get(ptype, candidate)
            app_name = self.app_name(route)
            try:
                if app_name not in self.described:
                    response = self.handle(route).describe.remote()
                    self.described[app_name] = await asyncio.wait_for(response, route.spec.call_timeout_s)
            except Exception as exc:
                errors.append(f"{candidate}: {self.scrub(describe_error(exc))}")
                continue
            return {**self.described[app_name], "type": ptype.value, "name": name,
                    "served_by": candidate, "version": route.version}
        raise ProviderCallError(f"cannot describe {ptype.value} provider {name!r}: " + "; ".join(errors))


class RoutedCache:
    """A cache provider of the registry, as the embedding cache's backend (through its chain and breaker)."""

    def __init__(self, core: RouterCore, name: str) -> None:
        self.core, self.name = core, name

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        return await self.core.call_chain(ProviderType.CACHE, self.name, "get_many", [keys], {}, True)

    async def set_many(self, items: dict[str, Any], ttl: float | None = None) -> None:
        await self.core.call_chain(ProviderType.CACHE, self.name, "set_many", [items, ttl], {}, True)
