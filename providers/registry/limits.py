"""Input checks that apply whoever calls (HTTP or a Python handle).

Each limit exists because the input costs resources: every text is a model
forward pass, every character is tokenizer work, every item a write, every
result row a copy across processes, every hop of a traversal multiplies the
rows. The registry's limits (``registry.max_*`` in providers.yaml) are
ceilings for every provider, checked in the router before any provider is
called, so a provider that checks nothing is still protected; providers have
tighter ones of their own (a store's ``config.max_top_k``, ...).

Every refusal is an `InvalidRequestError` (400) naming the field and the
setting: ``top_k: is 20000; the limit is 10000 (registry.max_top_k)``.
Only sizes are checked here; types and values are the provider's to check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from providers.errors import InvalidRequestError


def limit_error(what: str, limit: int, setting: str, field: str) -> InvalidRequestError:
    """The one shape of every limit's error: what was sent, the limit, the setting that sets it."""
    return InvalidRequestError(f"{what}; the limit is {limit} ({setting})", field)


def check_texts(texts: Any, field: str, max_texts: int, max_chars: int) -> list[str]:
    if isinstance(texts, str):
        raise InvalidRequestError("must be a list of strings, not one string", field)
    if not isinstance(texts, (list, tuple)):
        raise InvalidRequestError(f"must be a list of strings, got {type(texts).__name__}", field)
    if not texts:
        raise InvalidRequestError("must not be empty", field)
    if len(texts) > max_texts:
        raise limit_error(f"has {len(texts)} items", max_texts, "registry.max_texts_per_request", field)
    for i, text in enumerate(texts):
        check_text(text, f"{field}[{i}]", max_chars)
    return list(texts)


def check_text(text: Any, field: str, max_chars: int) -> str:
    if not isinstance(text, str):
        raise InvalidRequestError(f"must be a string, got {type(text).__name__}", field)
    check_chars(text, field, max_chars)
    return text


def check_chars(text: Any, field: str, max_chars: int) -> None:
    """Length only: a value that is not a string is left to the provider."""
    if isinstance(text, str) and len(text) > max_chars:
        raise limit_error(f"has {len(text)} characters", max_chars, "registry.max_chars_per_text", field)


# -- per-method checks (``check_call``) ----------------------------------------------------
# Each takes (value, field, settings); ``settings`` is a RegistrySettings (or
# anything with its max_* attributes). A missing argument arrives as None.

Check = Callable[[Any, str, Any], None]


def _texts(value: Any, field: str, s: Any) -> None:
    check_texts(value, field, s.max_texts_per_request, s.max_chars_per_text)


def _text(value: Any, field: str, s: Any) -> None:
    check_text(value, field, s.max_chars_per_text)


def _chars(value: Any, field: str, s: Any) -> None:
    check_chars(value, field, s.max_chars_per_text)


def _items(value: Any, field: str, s: Any) -> None:
    if isinstance(value, (list, tuple, dict)) and len(value) > s.max_items_per_request:
        raise limit_error(f"has {len(value)} items", s.max_items_per_request, "registry.max_items_per_request",
                          field)


def _content(item: Any) -> Any:
    """The text of a document or candidate: an object's ``content``, a dict's ``content``/``text``, a string."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return item.get("content", item.get("text"))
    return getattr(item, "content", None)


def _documents(value: Any, field: str, s: Any) -> None:
    _items(value, field, s)
    if isinstance(value, (list, tuple)):
        for i, doc in enumerate(value):
            _chars(_content(doc), f"{field}[{i}].content", s)


def _document(value: Any, field: str, s: Any) -> None:
    _chars(_content(value), f"{field}.content", s)


def _candidates(value: Any, field: str, s: Any) -> None:
    """Every candidate is a text the model scores against the query: texts per request."""
    if not isinstance(value, (list, tuple)):
        return
    if len(value) > s.max_texts_per_request:
        raise limit_error(f"has {len(value)} candidates", s.max_texts_per_request,
                          "registry.max_texts_per_request", field)
    for i, item in enumerate(value):
        _chars(_content(item), f"{field}[{i}]" if isinstance(item, str) else f"{field}[{i}].content", s)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _top_k(value: Any, field: str, s: Any) -> None:
    n = _count(value)
    if n is not None and n > s.max_top_k:
        raise limit_error(f"is {n}", s.max_top_k, "registry.max_top_k", field)


def _depth(value: Any, field: str, s: Any) -> None:
    n = _count(value)
    if n is not None and n > s.max_graph_depth:
        raise limit_error(f"is {n}", s.max_graph_depth, "registry.max_graph_depth", field)


_RERANK = ((0, "query", _chars), (1, "candidates", _candidates))

# method -> (position, parameter name, check) for each input that costs resources.
# Method names are unique across the interfaces (get_connected_entities has
# max_depth third in both the engine and the manager).
CALL_CHECKS: dict[str, tuple[tuple[int, str, Check], ...]] = {
    # embeddings
    "embed_texts": ((0, "texts", _texts),),
    "embed_query": ((0, "query", _text),),
    # vector stores
    "store_documents": ((0, "documents", _documents),),
    "store_document": ((0, "document", _document),),
    "update_document": ((0, "document", _document),),
    "delete_documents": ((0, "document_ids", _items),),
    "search_by_ids": ((0, "document_ids", _items),),
    "search_similar": ((1, "top_k", _top_k),),
    "hybrid_search": ((1, "text_query", _chars), (2, "top_k", _top_k)),
    "list_documents": ((0, "limit", _top_k),),
    "list_documents_after": ((1, "limit", _top_k),),
    # rerankers
    "rerank": _RERANK,
    "rerank_with_fusion": _RERANK,
    "batch_score_pairs": ((0, "query", _chars), (1, "documents", _candidates)),
    "score_pair": ((0, "query", _chars), (1, "document", _chars)),
    # graph engines, managers and clients
    "create_entities": ((0, "entities", _items),),
    "create_relationships": ((0, "relationships", _items),),
    "find_entities": ((2, "limit", _top_k),),
    "get_connected_entities": ((2, "max_depth", _depth),),
    "find_path": ((2, "max_depth", _depth),),
    "get_graph_as_of": ((2, "max_depth", _depth),),
    "execute_cypher": ((0, "query", _chars),),
    "execute": ((0, "query", _chars),),
    "execute_in_transaction": ((0, "statements", _items),),
    "add_episode": ((0, "content", _chars), (2, "entities", _items), (3, "relationships", _items)),
    "search": ((0, "query", _chars), (3, "limit", _top_k)),
    # caches
    "get_many": ((0, "keys", _items),),
    "set_many": ((0, "items", _items),),
}


def check_call(method: str, args: list[Any], kwargs: dict[str, Any], settings: Any) -> None:
    """The registry's limits on a call's arguments, positional or by name; other
    methods, and everything but sizes, are the provider's to check."""
    for position, name, check in CALL_CHECKS.get(method, ()):
        value = args[position] if len(args) > position else kwargs.get(name)
        check(value, name, settings)


def check_tree(value: Any, root: str, settings: Any) -> None:
    """Every string and list of a JSON-like tree (a tool's arguments) within the limits.

    Iterative: arguments nested deeper than Python's recursion limit must be
    a 400, not a RecursionError.
    """
    stack = [(value, root)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            _chars(node, path, settings)
        elif isinstance(node, dict):
            _items(node, path, settings)
            stack.extend(reversed([(v, f"{path}.{k}") for k, v in node.items()]))  # first error in order
        elif isinstance(node, (list, tuple)):
            _items(node, path, settings)
            stack.extend(reversed([(v, f"{path}[{i}]") for i, v in enumerate(node)]))
