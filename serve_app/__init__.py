"""The face of the registry: the seed's Python API and the application builders.

    from serve_app import provider_registry, ProviderType
    embedder = await provider_registry.get_provider(ProviderType.EMBEDDING, "minilm")

Importing this package does not import Ray; the first registry call connects.
"""

from __future__ import annotations

from typing import Any

from providers.types import ProviderType
from serve_app.client import ProviderRegistry

# The seed's global registry: a client of the application named "registry".
# It holds only a lazily created handle; all state lives in the cluster.
provider_registry = ProviderRegistry()


async def get_provider(provider_type: ProviderType | str, name: str) -> Any:
    """Get a provider from the global registry."""
    return await provider_registry.get_provider(provider_type, name)


async def get_provider_with_fallback(provider_type: ProviderType | str, name: str) -> Any:
    """Get a provider from the global registry, with per-call fallback."""
    return await provider_registry.get_provider_with_fallback(provider_type, name)


__all__ = ["ProviderRegistry", "ProviderType", "get_provider", "get_provider_with_fallback", "provider_registry"]
