"""The eight provider types of the seed, and the config key each lives under."""

from __future__ import annotations

from enum import Enum


class ProviderType(str, Enum):
    """A kind of provider. The value is the top-level key in providers.yaml."""

    EMBEDDING = "embeddings"
    VECTOR_STORE = "vector_stores"
    GRAPH_ENGINE = "graph_engines"
    GRAPH_MANAGER = "graph_managers"
    GRAPH_CLIENT = "graph_clients"
    RERANKER = "rerankers"
    CACHE = "cache"
    TOOL = "tools"

    @classmethod
    def parse(cls, value: ProviderType | str) -> ProviderType:
        """Accept a member, its value (``embeddings``) or its name (``EMBEDDING``)."""
        from providers.errors import UnknownProviderTypeError

        if isinstance(value, cls):
            return value
        text = str(value)
        for member in cls:
            if text in (member.value, member.name, member.name.lower()):
                return member
        raise UnknownProviderTypeError(
            f"unknown provider type {text!r}; known types: "
            + ", ".join(m.value for m in cls)
        )

    def __str__(self) -> str:  # f"{ptype}" gives "embeddings", not "ProviderType.EMBEDDING"
        return self.value
