"""What the generator knows of each provider type beyond its interface and its template files.

The interface (`providers.interfaces.interface_for`) gives the class to
subclass and every method signature; the files under ``templates/<type>/``
give the placeholder bodies and tests. What is left is here: the suggested
class-name ending and the config keys the placeholder bodies read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from providers.types import ProviderType

# The provider name, as a default of a built-in config key (model_name, tool_name).
NAME_TOKEN = "__NAME__"


@dataclass(frozen=True)
class Builtin:
    """A config key the placeholder behaviour itself reads."""

    default: Any
    types: tuple[type, ...]  # what a user's --config-key override must be
    comment: str


@dataclass(frozen=True)
class TypeSpec:
    class_suffix: str  # suggested class name ending (MyReranker)
    builtins: dict[str, Builtin] = field(default_factory=dict)


SPECS: dict[ProviderType, TypeSpec] = {
    ProviderType.EMBEDDING: TypeSpec("Embedder", {
        "dimension": Builtin(8, (int,), "length of every vector"),
        "model_name": Builtin(NAME_TOKEN, (str,), "what get_model_name reports"),
    }),
    ProviderType.VECTOR_STORE: TypeSpec("VectorStore"),
    ProviderType.GRAPH_ENGINE: TypeSpec("GraphEngine"),
    ProviderType.GRAPH_MANAGER: TypeSpec("GraphManager"),
    ProviderType.GRAPH_CLIENT: TypeSpec("GraphClient"),
    ProviderType.RERANKER: TypeSpec("Reranker", {
        "max_candidates": Builtin(100, (int,), "most candidates one rerank call accepts"),
    }),
    ProviderType.CACHE: TypeSpec("Cache", {
        "default_ttl_s": Builtin(None, (int, float, type(None)),
                                 "expiry in seconds when a call gives none (null: never)"),
    }),
    ProviderType.TOOL: TypeSpec("Tool", {
        "tool_name": Builtin(NAME_TOKEN, (str,), "what get_name reports"),
        "description": Builtin("Echoes its message back.", (str,), "what get_description reports"),
    }),
}
