"""The seed's Python API, as a client of the running registry application.

``provider_registry.get_provider(ProviderType.EMBEDDING, "minilm")`` returns a
proxy that *is* an ``EmbeddingProvider`` (a subclass built from the
interface): its async methods are calls through the registry router (so they
get deadlines and, for ``get_provider_with_fallback``, the fallback chain);
its sync getters (``get_dimension`` ...) answer from values the router read
once from the provider, because a sync method cannot wait on the network from
inside an event loop.

All state lives in the cluster (route table in GCS, providers in Serve), so a
client holds nothing but a handle: any number of processes can use one.
"""

from __future__ import annotations

import asyncio
import os
import time
from functools import cache
from typing import Any

from deployments.names import ROUTER_DEPLOYMENT_NAME
from providers.errors import RegistryError
from providers.interfaces import LIFECYCLE_METHODS, interface_for, shape_of
from providers.types import ProviderType

ROUTER_DEPLOYMENT = ROUTER_DEPLOYMENT_NAME  # the name callers of this module knew
DIRECT_ENV = "PROVIDER_REGISTRY_DIRECT"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


class ProviderRegistry:
    """Operate a registry application by name (default ``registry``)."""

    def __init__(self, app_name: str = "registry", address: str | None = None, retry_s: float = 30.0,
                 direct: bool | None = None) -> None:
        """``direct``: provider calls routed in this process, one hop to the provider
        (`deployments.direct`), instead of through a router replica. Default: the
        ``PROVIDER_REGISTRY_DIRECT`` environment variable (``1``), else through the router."""
        self.app_name = app_name
        self.address = address
        self.retry_s = retry_s
        self.retries = 0  # calls repeated after a router replica died
        self.direct = _env_flag(DIRECT_ENV) if direct is None else direct
        self._router: Any = None
        self._direct: tuple[Any, Any] | None = None  # (event loop, DirectRoute or None)

    # -- connection -------------------------------------------------------------
    def _handle(self) -> Any:
        if self._router is None:
            import ray
            from ray import serve

            if not ray.is_initialized():
                ray.init(address=self.address or os.environ.get("RAY_ADDRESS", "auto"),
                         log_to_driver=False, ignore_reinit_error=True)
            from deployments.handles import ReadsByValue, router_call_repeatable

            # Reads go by value over gRPC (`deployments.handles`): 2.1 ms of this process's CPU
            # per pgvector search by reference (benchmarks/hop_cost.py, 2026-12-06).
            handle = serve.get_deployment_handle(ROUTER_DEPLOYMENT, self.app_name)
            self._router = ReadsByValue(handle, handle.options(_by_reference=False), router_call_repeatable)
        return self._router

    async def _ask(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One router call. Reads and provider calls are retried on another router
        replica when the one serving them dies (for up to ``retry_s``); changes to
        the registry are not, since one may have taken effect before the failure."""
        retry = method in _RETRYABLE
        deadline = time.monotonic() + self.retry_s
        delay = 0.05
        while True:
            try:
                return await getattr(self._handle(), method).remote(*args, **kwargs)
            except Exception as exc:
                if not (retry and _router_died(exc) and time.monotonic() + delay < deadline):
                    raise _unwrap(exc) from None
            self.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    # -- the seed's API -------------------------------------------------------------
    async def register_provider(self, provider_type: ProviderType | str, name: str, class_path: str,
                                config: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
                                **options: Any) -> bool:
        """Deploy a new provider (its own Serve application) and route to it by name.

        ``options`` are the other keys of a providers.yaml entry:
        ``deployment``, ``fallback``, ``depends_on``, ``call_timeout_s``.
        """
        await self._ask("register_provider", provider_type, name, class_path, config or {}, metadata or {}, options)
        return True

    async def get_provider(self, provider_type: ProviderType | str, name: str, initialize: bool = True) -> Any:
        """A proxy for ``name``; no fallback. ``initialize`` is accepted for the
        seed's signature: providers are initialized by their deployment."""
        return await self._proxy(provider_type, name, use_fallback=False)

    async def get_provider_with_fallback(self, provider_type: ProviderType | str, name: str) -> Any:
        """A proxy whose every call falls back along ``name``'s chain on failure or deadline."""
        return await self._proxy(provider_type, name, use_fallback=True)

    async def _proxy(self, provider_type: ProviderType | str, name: str, use_fallback: bool) -> Any:
        ptype = ProviderType.parse(provider_type)
        direct = await self._direct_route()
        info = (await direct.describe(ptype.value, name, use_fallback) if direct is not None
                else await self._ask("describe", ptype.value, name, use_fallback))
        return proxy_class(ptype)(self, ptype, name, use_fallback, info)

    async def _direct_route(self) -> Any:
        """This event loop's `DirectRoute` when calls are direct (None: through the router).

        One per event loop: its merging and cache hold futures of the loop that
        made them, and callers often run ``asyncio.run`` once per call."""
        if not self.direct:
            return None
        loop = asyncio.get_running_loop()
        if self._direct is None or self._direct[0] is not loop:
            from deployments.direct import DirectRoute

            self._direct = (loop, await DirectRoute.attach(await self._ask("client_settings")))
        return self._direct[1]

    async def list_providers(self, provider_type: ProviderType | str | None = None,
                             include_instances: bool = False) -> dict[str, Any]:
        ptype = ProviderType.parse(provider_type).value if provider_type else None
        await self._publish_direct_stats()
        return await self._ask("list_providers", ptype, include_instances)

    async def _publish_direct_stats(self) -> None:
        """Calls routed in this process count in what the registry reports back to it."""
        if self._direct is not None and self._direct[1] is not None:
            await self._direct[1].publish_now()

    async def reload_provider(self, provider_type: ProviderType | str, name: str) -> bool:
        await self._ask("reload_provider", ProviderType.parse(provider_type).value, name)
        return True

    async def swap_provider(self, provider_type: ProviderType | str, name: str, class_path: str | None = None,
                            config: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
                            **options: Any) -> dict[str, Any]:
        """Replace ``name`` by a new version (new class and/or config) without dropping a request.

        The new version must start and pass its health check before any call
        reaches it; it is watched afterwards and rolled back automatically if
        its calls fail (``registry.rollout``).
        """
        changes: dict[str, Any] = dict(options)
        if class_path is not None:
            changes["class"] = class_path
        if config is not None:
            changes["config"] = config
        if metadata is not None:
            changes["metadata"] = metadata
        return await self._ask("swap_provider", ProviderType.parse(provider_type).value, name, changes)

    async def rollback_provider(self, provider_type: ProviderType | str, name: str) -> dict[str, Any]:
        """Back to the spec the current version replaced."""
        return await self._ask("rollback_provider", ProviderType.parse(provider_type).value, name)

    async def delete_provider(self, provider_type: ProviderType | str, name: str) -> bool:
        await self._ask("delete_provider", ProviderType.parse(provider_type).value, name)
        return True

    async def set_fallback_provider(self, provider_type: ProviderType | str, primary_name: str,
                                    fallback_name: str | list[str]) -> bool:
        await self._ask("set_fallback_provider", ProviderType.parse(provider_type).value, primary_name, fallback_name)
        return True

    async def apply_config(self, config: str | os.PathLike[str] | dict[str, Any], dry_run: bool = False,
                           prune: bool = False) -> dict[str, Any]:
        """Make the registry follow a providers.yaml: register what is new, swap what changed
        (zero downtime), set changed fallbacks, and with ``prune`` delete what it omits.

        ``config`` is a path (read, and ``${VAR}`` interpolated here, in this process) or a
        mapping (taken as is). Returns the plan (``steps``, ``unchanged``) and what was
        ``done``; ``dry_run`` only plans. ``registry:`` changes are planned as ``restart``
        rows and never applied.
        """
        from deployments.apply_plan import file_document

        doc = dict(config) if isinstance(config, dict) else await asyncio.to_thread(file_document, config)
        return await self._ask("apply_config", doc, dry_run, prune)

    async def health_check(self, provider_type: ProviderType | str, name: str) -> dict[str, Any]:
        return await self._ask("health_check", ProviderType.parse(provider_type).value, name)

    async def start_health_monitoring(self) -> None:
        await self._ask("set_monitoring", True)

    async def stop_health_monitoring(self) -> None:
        await self._ask("set_monitoring", False)

    async def get_stats(self) -> dict[str, Any]:
        await self._publish_direct_stats()
        return await self._ask("get_stats")

    async def get_events(self, since: float | None = None, limit: int = 100) -> dict[str, Any]:
        """The registry's recent events, newest first (``GET /v1/events``): registrations,
        swaps, reloads, rollbacks, breaker opens and closes, health changes."""
        return await self._ask("get_events", since, limit)

    async def cleanup(self) -> None:
        """Delete every provider application of this registry, then the registry itself."""
        from ray import serve

        await self._ask("cleanup")
        await asyncio.to_thread(serve.delete, self.app_name)
        self._router = None

    async def reembed(self, name: str, embedder: str | None = None, target: str | None = None,
                      batch_size: int = 256, progress: bool = True) -> dict[str, Any]:
        """Move vector store ``name`` to its embedder's current model (or ``embedder``'s).

        Copies every document through the embedder into a new collection,
        catches up with writes made meanwhile, then hot-swaps the store onto
        it. Interrupted, it resumes where it stopped when called again.
        """
        return await run_reembed(lambda: self._ask("reembed_step", name, embedder, target, batch_size),
                                 progress, name)

    async def abort_reembed(self, name: str) -> dict[str, Any]:
        """Give up a re-embed of ``name``: it takes writes again; the new collection is kept."""
        return await self._ask("reembed_abort", name)

    async def call(self, provider_type: ProviderType | str, name: str, method: str, args: list[Any],
                   kwargs: dict[str, Any], use_fallback: bool) -> Any:
        ptype = ProviderType.parse(provider_type).value
        direct = await self._direct_route()
        if direct is not None:
            return await direct.call(ptype, name, method, args, kwargs, use_fallback)
        return await self._ask("call", ptype, name, method, args, kwargs, use_fallback)


async def run_reembed(step: Any, progress: bool, name: str) -> dict[str, Any]:
    """Call ``step()`` until it reports ``done``, with a progress bar on stderr."""
    from tqdm import tqdm

    bar = None
    try:
        while True:
            state = await step()
            if progress and bar is None and not state.get("done"):
                bar = tqdm(total=state.get("total") or None, unit="doc", desc=f"re-embed {name}")
            if bar is not None:
                bar.set_postfix_str(state["phase"])
                if state.get("total"):
                    bar.total = max(state["total"], state["copied"])
                bar.update(state["copied"] - bar.n)
            if state.get("done"):
                return state
    finally:
        if bar is not None:
            bar.close()


class _ProxyBase:
    def __init__(self, registry: ProviderRegistry, ptype: ProviderType, name: str,
                 use_fallback: bool, info: dict[str, Any]) -> None:
        self._registry = registry
        self.provider_type = ptype
        self.name = name
        self.use_fallback = use_fallback
        self.info = info

    def __repr__(self) -> str:
        mode = "with fallback" if self.use_fallback else "no fallback"
        return f"<{self.info.get('interface')} proxy {self.provider_type.value}/{self.name} ({mode})>"


@cache
def proxy_class(ptype: ProviderType) -> type:
    """A concrete subclass of ``ptype``'s interface whose methods call the router."""
    iface = interface_for(ptype)
    shape = shape_of(ptype)
    namespace: dict[str, Any] = {}
    for method in shape.async_methods:
        namespace[method] = _noop_initialize if method in LIFECYCLE_METHODS else _remote_method(method)
    for method in shape.sync_methods:
        namespace[method] = _cached_getter(method)
    return type(f"{iface.__name__}Proxy", (_ProxyBase, iface), namespace)


def _remote_method(method: str) -> Any:
    async def call(self: _ProxyBase, *args: Any, **kwargs: Any) -> Any:
        return await self._registry.call(self.provider_type, self.name, method, list(args), kwargs, self.use_fallback)

    call.__name__ = method
    return call


def _cached_getter(method: str) -> Any:
    def get(self: _ProxyBase) -> Any:
        return self.info["getters"][method]

    get.__name__ = method
    return get


async def _noop_initialize(self: _ProxyBase, config: dict[str, Any] | None = None) -> None:
    """Providers are initialized by their deployment; change config with reload_provider."""


# Safe to repeat: they read, or call a provider (whose calls the registry
# already treats as retryable through fallback).
_RETRYABLE = frozenset({"call", "describe", "list_providers", "get_stats", "health_check", "client_settings"})


def _router_died(exc: BaseException) -> bool:
    """The router replica serving the call died or vanished (not the provider failing)."""
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
    from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

    if isinstance(getattr(exc, "cause", None), RegistryError):
        return False
    return isinstance(exc, (ActorDiedError, ActorUnavailableError, RayActorError,
                            ReplicaUnavailableError, DeploymentUnavailableError))


def _unwrap(exc: BaseException) -> BaseException:
    """Ray wraps a replica's exception; give callers the registry error itself."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, RegistryError):
        return cause
    return exc
