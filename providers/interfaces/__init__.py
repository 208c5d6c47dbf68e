"""One interface per provider type, imported on first use (STYLE: register by name).

`interface_for(ptype)` gives the ABC; `shape_of(ptype)` lists which of
its methods are async (called through the router per call) and which are
cheap sync getters (read once when the registry describes a provider).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import cache

from providers.types import ProviderType

_INTERFACES: dict[ProviderType, tuple[str, str]] = {
    ProviderType.EMBEDDING: ("providers.interfaces.embeddings", "EmbeddingProvider"),
    ProviderType.VECTOR_STORE: ("providers.interfaces.vector_stores", "VectorStore"),
    ProviderType.GRAPH_ENGINE: ("providers.interfaces.graph_engines", "GraphEngine"),
    ProviderType.GRAPH_MANAGER: ("providers.interfaces.graph_managers", "GraphManager"),
    ProviderType.GRAPH_CLIENT: ("providers.interfaces.graph_clients", "GraphClient"),
    ProviderType.RERANKER: ("providers.interfaces.rerankers", "Reranker"),
    ProviderType.CACHE: ("providers.interfaces.cache", "CacheProvider"),
    ProviderType.TOOL: ("providers.interfaces.tools", "Tool"),
}

# Lifecycle methods the deployment calls itself; callers never do.
LIFECYCLE_METHODS = frozenset({"initialize"})


@dataclass(frozen=True)
class InterfaceShape:
    name: str
    async_methods: frozenset[str]
    sync_methods: frozenset[str]

    @property
    def callable_methods(self) -> frozenset[str]:
        """What a caller may invoke through the router."""
        return (self.async_methods | self.sync_methods) - LIFECYCLE_METHODS


def interface_for(ptype: ProviderType) -> type:
    module, name = _INTERFACES[ProviderType.parse(ptype)]
    return getattr(importlib.import_module(module), name)


@cache
def shape_of(ptype: ProviderType) -> InterfaceShape:
    iface = interface_for(ptype)
    async_methods, sync_methods = set(), set()
    for name in sorted(getattr(iface, "__abstractmethods__", ())):
        member = getattr(iface, name)
        (async_methods if inspect.iscoroutinefunction(member) else sync_methods).add(name)
    return InterfaceShape(iface.__name__, frozenset(async_methods), frozenset(sync_methods))
