"""Deployment handles for a Python caller: repeatable reads go by value.

Used for the one hop's provider handles (`deployments.direct`) and for the
Python API's handle to the router (`deployments.client`): via the router,
pgvector searches went 248 -> 325/s, the caller's CPU per search 2.14 -> 1.12
ms and the router replica's 2.12 -> 1.18 (benchmarks/hop_cost.py --quick).

A Serve handle call goes by reference by default: the request is an actor
task, the answer an object in Ray's object store. Serve's throughput mode
switches the *replicas'* handles (the router's) to gRPC calls that carry
request and answer by value, but a process that only joins the cluster (a
script using `ProviderRegistry(direct=True)`) keeps Serve's defaults
(`serve_app.ingress.for_ray_start` says why). Asking for by-value calls per
handle (``options(_by_reference=False)``) measured, for pgvector searches
from such a caller (5,000 vectors, 8 at once, merged reads, this 2-core
machine, 2026-12-06): 378 -> 480-490 searches/s; CPU per search in the
caller 0.96 -> 0.50 ms, in the provider replica 1.15 -> 0.71 ms. Running the
handle's router on the caller's loop instead of Serve's router thread, and
plain pickle instead of cloudpickle, changed nothing measurable.

The catch: the gRPC client in a process that did not start Ray refuses
answers over 4 MiB (``RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH`` as that
process read it; seen: RESOURCE_EXHAUSTED "Received message larger than max
(5408852 vs. 4194304)" for 60 documents of 90,000 characters). So only calls
that are harmless to run twice go by value: reads (and a cache's sets of the
same value); an answer too large for gRPC is asked again by reference. Every
other call (writes) goes by reference as before.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from deployments.names import PROVIDER_DEPLOYMENT_NAME
from deployments.read_merging import MERGEABLE

# Provider methods whose second run changes nothing: reads, and the cache sets
# that read merging already treats so.
REPEATABLE = frozenset().union(*MERGEABLE.values()) | {
    "embed_texts", "embed_query", "rerank", "score_pair", "batch_score_pairs", "rerank_with_fusion",
    "health_check", "get_stats", "list_documents", "list_documents_after", "get_embedding_space",
}
# `ProviderDeployment` methods whose first argument names the provider method.
_DISPATCHERS = frozenset({"invoke", "invoke_many"})
# `RegistryRouter` methods that only read; ``call`` reads when its provider method does.
ROUTER_READS = frozenset({"describe", "list_providers", "get_stats", "get_events", "health_check", "client_settings",
                          "list_tools"})


def provider_call_repeatable(method: str, args: tuple[Any, ...]) -> bool:
    """A call of `ProviderDeployment`: ``invoke(provider_method, ...)``, ``describe()``."""
    return method == "describe" or (method in _DISPATCHERS and bool(args) and args[0] in REPEATABLE)


def router_call_repeatable(method: str, args: tuple[Any, ...]) -> bool:
    """A call of `RegistryRouter`: ``call(ptype, name, provider_method, ...)`` or a read of the registry."""
    return method in ROUTER_READS or (method == "call" and len(args) > 2 and args[2] in REPEATABLE)


def by_value_reads_handle(app_name: str) -> ReadsByValue:
    """`RouterCore`'s ``handle_of`` for a caller outside Serve's replicas."""
    from ray.serve.handle import DeploymentHandle

    # A handle of its own (serve.get_deployment_handle shares one per app in a process).
    handle = DeploymentHandle(PROVIDER_DEPLOYMENT_NAME, app_name)
    return ReadsByValue(handle, handle.options(_by_reference=False), provider_call_repeatable)


class ReadsByValue:
    """``handle.<method>.remote(...)`` as on a `DeploymentHandle`; the transport is chosen per
    call: by value when ``repeatable(method, args)``, else by reference."""

    def __init__(self, by_reference: Any, by_value: Any,
                 repeatable: Callable[[str, tuple[Any, ...]], bool]) -> None:
        self.by_reference = by_reference
        self.by_value = by_value
        self.repeatable = repeatable

    def __getattr__(self, method: str) -> _Method:
        if method.startswith("__"):
            raise AttributeError(method)
        return _Method(self, method)


class _Method:
    def __init__(self, handle: ReadsByValue, method: str) -> None:
        self.handle, self.method = handle, method

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        # Only the handle used is looked up: a Serve handle's attribute is a new handle
        # (`DeploymentHandle.options`), ~1.5% of a by-value caller's CPU when both were made.
        if self.handle.repeatable(self.method, args):
            return _Answer(self.handle, self.method, args, kwargs)
        return getattr(self.handle.by_reference, self.method).remote(*args, **kwargs)


class _Answer:
    """A by-value call; asked again by reference when its answer is too large for gRPC."""

    def __init__(self, handle: ReadsByValue, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._handle, self._method, self._args, self._kwargs = handle, method, args, kwargs
        self._response = getattr(handle.by_value, method).remote(*args, **kwargs)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result().__await__()

    async def _result(self) -> Any:
        try:
            return await self._response
        except Exception as exc:
            if not too_large_for_grpc(exc):
                raise
        self._response = getattr(self._handle.by_reference, self._method).remote(*self._args, **self._kwargs)
        return await self._response

    def cancel(self) -> None:
        self._response.cancel()


def too_large_for_grpc(exc: BaseException) -> bool:
    import grpc

    return isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)) and \
        exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
