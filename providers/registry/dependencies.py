"""How a provider reaches the providers it depends on (a reranker its
embedder, a tool its store), without importing Ray.

The contract: before ``initialize(config)``, whoever hosts a provider sets
``provider.registry`` to an object with the seed's two look-ups::

    await self.registry.get_provider(ProviderType.EMBEDDING, "minilm")
    await self.registry.get_provider_with_fallback(ProviderType.EMBEDDING, "minilm")

each returning an object implementing that type's interface. On Ray Serve
it is the registry client (`deployments.client.ProviderRegistry`): every call
goes through the router, so dependencies get deadlines, fallback chains and
breakers like any caller. Outside Ray (a script, a unit test) it is a
`LocalRegistry` over provider instances in the same process.

A provider names what it needs in its ``depends_on`` (``"type/name"``) so
the registry can refuse to delete a provider still in use; `require`
checks that a dependency used by a provider was declared there.
"""

from __future__ import annotations

from typing import Any, Protocol

from providers.errors import ConfigError, ProviderNotFoundError
from providers.types import ProviderType


class DependencyResolver(Protocol):
    async def get_provider(self, provider_type: ProviderType | str, name: str) -> Any: ...

    async def get_provider_with_fallback(self, provider_type: ProviderType | str, name: str) -> Any: ...


class LocalRegistry:
    """Providers of this process, by type and name (no routing, no fallback)."""

    def __init__(self, providers: dict[tuple[ProviderType | str, str], Any] | None = None) -> None:
        self._providers: dict[tuple[ProviderType, str], Any] = {}
        for (ptype, name), provider in (providers or {}).items():
            self.add(ptype, name, provider)

    def add(self, ptype: ProviderType | str, name: str, provider: Any) -> None:
        self._providers[(ProviderType.parse(ptype), name)] = provider

    async def get_provider(self, provider_type: ProviderType | str, name: str) -> Any:
        key = (ProviderType.parse(provider_type), name)
        if key not in self._providers:
            known = sorted(n for t, n in self._providers if t == key[0])
            raise ProviderNotFoundError(f"no {key[0].value} provider named {name!r}; known: {known or 'none'}")
        return self._providers[key]

    async def get_provider_with_fallback(self, provider_type: ProviderType | str, name: str) -> Any:
        return await self.get_provider(provider_type, name)


def resolver_of(provider: Any, what: str) -> DependencyResolver:
    """``provider.registry``, or a clear error saying the provider was started without one."""
    registry = getattr(provider, "registry", None)
    if registry is None:
        raise ConfigError(f"{type(provider).__name__} needs {what} through the registry, but was started "
                          "without one (set provider.registry before initialize)")
    return registry


__all__ = ["DependencyResolver", "LocalRegistry", "resolver_of"]
