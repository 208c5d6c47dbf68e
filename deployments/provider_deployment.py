"""One provider as a Ray Serve deployment (its own application).

The replica loads the class (allowlist and interface checked again here:
every replica is a fresh process), initializes it from ``user_config``, and
answers ``invoke(method, args, kwargs)`` for the methods of its type's
interface. ``embed_texts`` goes through ``@serve.batch``: concurrent requests
are merged into one model call, worth about 3x on CPU for MiniLM.

Every line of the replica's Serve log names the provider (``[embeddings/minilm
v3]``, and ``provider_type``/``provider_name``/``provider_version`` fields in
JSON) and is scrubbed of the config's secrets (`deployments.logs`): Serve's
own lines and what the provider's code logs through ``logging`` alike.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
from ray import serve

from deployments.logs import install_log_filter, package_of, provider_fields, route_provider_logs
from providers.errors import InvalidRequestError
from providers.interfaces import shape_of
from providers.registry.config import BatchingOptions, ProviderConfig, parse_provider_config
from providers.registry.loading import load_provider_class
from providers.registry.redaction import scrub_text, secret_values
from providers.types import ProviderType

logger = logging.getLogger("ray.serve")


class ProviderUserConfig(ProviderConfig):
    """What can change in place, without restarting replicas."""

    config: dict[str, Any] = {}
    batching: BatchingOptions = BatchingOptions()


class ProviderDeployment:
    def __init__(self, provider_type: str, name: str, class_path: str, allowed_prefixes: list[str],
                 registry_app: str = "registry", version: int | None = None) -> None:
        self.ptype = ProviderType.parse(provider_type)
        self.name = name
        self.version = version
        self._secrets: set[str] = set()  # of the current config; read by the log filter on every line
        if _in_replica():  # a plain object (a unit test) leaves its process's logging alone
            install_log_filter(provider_fields(self.ptype, name, version), lambda: self._secrets)
            route_provider_logs([package_of(class_path)])
        self.registry_app = registry_app
        self._registry: Any = None
        self.class_path = class_path
        self.cls = load_provider_class(class_path, self.ptype, allowed_prefixes)
        self.shape = shape_of(self.ptype)
        self.provider: Any = None
        self.batching = BatchingOptions()
        self._swap_lock = asyncio.Lock()

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Initialize (first call) or re-initialize with a new config, in place.

        The new instance is built beside the old one and swapped in only once
        it initialized, so a bad config leaves the old instance serving.
        """
        uc = parse_provider_config(ProviderUserConfig, user_config, path="user_config")
        async with self._swap_lock:
            # The new config's secrets are scrubbed from its initialization's logs too;
            # the old ones stay scrubbed (the old instance may still log while closing).
            self._secrets = self._secrets | secret_values(uc.config)
            fresh = self.cls()
            fresh.registry = self._dependency_resolver()
            await fresh.initialize(dict(uc.config))
            old, self.provider = self.provider, fresh
            self.batching = uc.batching
            self._batched_embed.set_max_batch_size(uc.batching.max_batch_size)
            self._batched_embed.set_batch_wait_timeout_s(uc.batching.batch_wait_timeout_s)
        logger.info("%s ready (%s)", "reconfigured" if old is not None else "initialized", self.class_path)
        if old is not None:
            await _close(old)

    def _dependency_resolver(self) -> Any:
        """What the provider reaches its dependencies through (`providers.registry.dependencies`):
        the registry's own client, so its calls take the router's path, fallbacks and breakers."""
        if self._registry is None:
            from deployments.client import ProviderRegistry

            self._registry = ProviderRegistry(app_name=self.registry_app)
        return self._registry

    async def invoke(self, method: str, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None) -> Any:
        args, kwargs = list(args or []), dict(kwargs or {})
        if method not in self.shape.callable_methods:
            raise InvalidRequestError(
                f"{self.shape.name} has no method {method!r}; methods: {sorted(self.shape.callable_methods)}",
                "method",
            )
        if method == "embed_texts" and self.batching.enabled and not kwargs and len(args) == 1:
            return list(await self._batched_embed(args[0]))
        result = getattr(self.provider, method)(*args, **kwargs)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    async def invoke_many(self, method: str, args_list: list[list[Any]],
                          kwargs_list: list[dict[str, Any]]) -> list[tuple[bool, Any]]:
        """Several calls of one method in one message (the router's merged reads,
        `deployments.read_merging`), run concurrently; each answer ``(True, result)`` or
        ``(False, exception)``, so one caller's bad input fails only that caller."""
        async def one(args: list[Any], kwargs: dict[str, Any]) -> tuple[bool, Any]:
            try:
                return True, await self.invoke(method, args, kwargs)
            except Exception as exc:  # the caller's own error, carried back to the caller
                return False, _portable(exc)

        return list(await asyncio.gather(*(one(a, k) for a, k in zip(args_list, kwargs_list))))

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _batched_embed(self, batches: list[list[str]]) -> list[np.ndarray]:
        flat = [text for texts in batches for text in texts]
        vectors = await self.provider.embed_texts(flat)
        matrix = np.asarray(vectors, dtype=np.float32)
        out, start = [], 0
        for texts in batches:
            out.append(matrix[start : start + len(texts)])
            start += len(texts)
        return out

    async def describe(self) -> dict[str, Any]:
        """The sync getters' answers, read once per provider version by the router."""
        getters = {m: _jsonable(getattr(self.provider, m)()) for m in sorted(self.shape.sync_methods)}
        return {
            "interface": self.shape.name,
            "class": self.class_path,
            "getters": getters,
            "async_methods": sorted(self.shape.async_methods - {"initialize"}),
        }

    async def check_health(self) -> None:
        """Serve's replica health check: the provider's own verdict."""
        report = await self.provider.health_check()
        if not isinstance(report, dict) or report.get("status") != "healthy":
            # Serve's controller logs this text, outside this replica's log filter: scrub it here.
            raise RuntimeError(scrub_text(f"{self.ptype.value}/{self.name} unhealthy: {report}", self._secrets))

    async def __del__(self) -> None:  # Serve awaits this when a replica is stopped
        if self.provider is not None:
            await _close(self.provider)


def _in_replica() -> bool:
    try:
        serve.get_replica_context()
    except Exception:  # RayServeException: not inside a Serve replica
        return False
    return True


async def _close(provider: Any) -> None:
    close = getattr(provider, "close", None) or getattr(provider, "cleanup", None)
    if close is None:
        return
    try:
        result = close()
        if asyncio.iscoroutine(result):
            await result
    except Exception as exc:  # closing is best effort
        logger.warning("closing provider failed: %s", exc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling (it crosses to the router inside a result), else a
    ProviderCallError with its description: one unpicklable error must not fail the batch."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        from providers.errors import ProviderCallError
        from providers.registry.routing import describe_error

        return ProviderCallError(describe_error(exc))
