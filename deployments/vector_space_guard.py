"""The embedding-space guard of vector stores, run by the core before each attempt.

A store whose spec names an ``embedder`` records the space that filled it
(provider, model, dimension) in its own database, on its first guarded
write. Every write or search routed to it afterwards is checked against what
its embedder serves *now*; a hot swap of the embedder to another model makes
them differ, and the router answers 409 naming both, instead of mixing two
models' vectors in one index (searches across spaces return confident
nonsense, and nothing else would notice). ``reembed`` (`deployments.vector_api`)
moves a store to its embedder's new space.
"""

from __future__ import annotations

from typing import Any

from providers.errors import EmbeddingSpaceMismatchError, RegistryBusyError
from providers.registry.table import Route
from providers.types import ProviderType
from providers.vector_stores.common import describe_space, space_differs

VS = ProviderType.VECTOR_STORE
# Calls that put vectors into a store or compare vectors with it.
GUARDED_METHODS = frozenset({"store_documents", "store_document", "update_document", "search_similar",
                             "hybrid_search"})
WRITE_METHODS = frozenset({"store_documents", "store_document", "update_document"})
CHANGE_METHODS = WRITE_METHODS | {"delete_document", "delete_documents"}
FROZEN_KEY = "reembed_frozen"  # route metadata: refuse changes while a re-embed takes its last copy


async def embedding_space(core: Any, embedder: str) -> dict[str, Any]:
    """The space an embeddings provider serves now (read once per version)."""
    info = await core.describe(ProviderType.EMBEDDING, embedder)
    getters = info.get("getters", {})
    return {"provider": embedder, "model": getters.get("get_model_name"),
            "dimension": getters.get("get_dimension")}


class SpaceGuard:
    """`deployments.router_core.Guard` of vector stores. Holds the space each
    (route key, version) recorded, read once."""

    def __init__(self) -> None:
        self.spaces: dict[tuple[str, int], dict[str, Any]] = {}

    async def before_call(self, core: Any, route: Route, method: str, args: list[Any],
                          kwargs: dict[str, Any]) -> None:
        return None

    async def recorded_space(self, core: Any, route: Route) -> dict[str, Any] | None:
        key = (route.key, route.version)
        if key not in self.spaces:
            space = await core.invoke(route, "get_embedding_space")
            if space is None:
                return None  # not claimed yet: ask again next time (another replica may claim it)
            self.spaces[key] = space
        return self.spaces[key]

    async def before_attempt(self, core: Any, route: Route, method: str) -> None:
        """Raise `EmbeddingSpaceMismatchError` if ``route``'s vectors are not its embedder's,
        and `RegistryBusyError` for a change while a re-embed switches collections."""
        if route.type is not VS:
            return
        if method in CHANGE_METHODS and route.spec.metadata.get(FROZEN_KEY):
            raise RegistryBusyError(
                f"vector store {route.name!r} is switching to its re-embedded collection and takes no changes "
                "for a few seconds; retry shortly")
        embedder = route.spec.embedder
        if embedder is None or method not in GUARDED_METHODS:
            return
        wanted = await embedding_space(core, embedder)
        recorded = await self.recorded_space(core, route)
        if recorded is None and method in WRITE_METHODS:
            recorded = await core.invoke(route, "set_embedding_space", wanted)  # first writer wins
            self.spaces[(route.key, route.version)] = recorded
        if space_differs(recorded, wanted):
            raise EmbeddingSpaceMismatchError(
                f"vector store {route.name!r} holds vectors of {describe_space(recorded)}, but its embedder "
                f"{embedder!r} now serves {describe_space(wanted)}; mixing them would corrupt search. "
                f"Re-embed the store (provider-registry reembed {route.name}) or swap the embedder back")
