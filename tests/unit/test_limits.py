"""Input limits (providers/registry/limits.py, and their HTTP and router parts):
every error names the field and the setting of the limit."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from providers.errors import InvalidRequestError, RequestTooLargeError
from providers.interfaces.rerankers import RerankCandidate
from providers.interfaces.vector_stores import VectorDocument
from providers.registry.config import RegistrySettings
from providers.registry.limits import check_call, check_text, check_texts, check_tree, limit_error

MAX_TEXTS = 4
MAX_CHARS = 10
MAX_ITEMS = 5
MAX_TOP_K = 7
MAX_DEPTH = 3
SETTINGS = RegistrySettings(max_texts_per_request=MAX_TEXTS, max_chars_per_text=MAX_CHARS,
                            max_items_per_request=MAX_ITEMS, max_top_k=MAX_TOP_K, max_graph_depth=MAX_DEPTH)


def invalid(fn: Any, *args: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        fn(*args)
    return info.value


def test_valid_texts_pass_through_as_a_list() -> None:
    assert check_texts(("a", "bb"), "texts", MAX_TEXTS, MAX_CHARS) == ["a", "bb"]
    edge = ["x" * MAX_CHARS] * MAX_TEXTS
    assert check_texts(edge, "texts", MAX_TEXTS, MAX_CHARS) == edge


def test_too_many_texts_names_field_and_limit() -> None:
    err = invalid(check_texts, ["a"] * (MAX_TEXTS + 1), "texts", MAX_TEXTS, MAX_CHARS)
    assert err.field == "texts"
    assert str(err).startswith("texts: ")
    assert f"has {MAX_TEXTS + 1} items" in str(err)
    assert f"limit is {MAX_TEXTS}" in str(err) and "max_texts_per_request" in str(err)


def test_long_text_names_its_index_and_limit() -> None:
    texts = ["ok", "ok", "ok", "y" * (MAX_CHARS + 1)]
    err = invalid(check_texts, texts, "texts", MAX_TEXTS, MAX_CHARS)
    assert err.field == "texts[3]"
    assert str(err).startswith("texts[3]: ")
    assert f"has {MAX_CHARS + 1} characters" in str(err)
    assert f"limit is {MAX_CHARS}" in str(err) and "max_chars_per_text" in str(err)


def test_characters_not_bytes_are_counted() -> None:
    assert check_text("é" * MAX_CHARS, "query", MAX_CHARS) == "é" * MAX_CHARS


def test_non_string_item_names_its_index() -> None:
    err = invalid(check_texts, ["a", 7], "texts", MAX_TEXTS, MAX_CHARS)
    assert err.field == "texts[1]"
    assert "got int" in str(err)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("one string", "not one string"), ({"a": 1}, "got dict"), (None, "got NoneType"), ([], "must not be empty")],
)
def test_texts_must_be_a_non_empty_list(value: Any, fragment: str) -> None:
    err = invalid(check_texts, value, "texts", MAX_TEXTS, MAX_CHARS)
    assert err.field == "texts"
    assert fragment in str(err)


def test_check_call_embed_texts_positional_and_keyword() -> None:
    check_call("embed_texts", [["a"]], {}, SETTINGS)
    check_call("embed_texts", [], {"texts": ["a"], "batch_size": 2}, SETTINGS)
    err = invalid(check_call, "embed_texts", [], {"texts": ["a"] * (MAX_TEXTS + 1)}, SETTINGS)
    assert err.field == "texts"
    err = invalid(check_call, "embed_texts", [["a", "b", "c", "z" * 11]], {}, SETTINGS)
    assert err.field == "texts[3]"


def test_check_call_embed_texts_missing_argument() -> None:
    err = invalid(check_call, "embed_texts", [], {}, SETTINGS)
    assert err.field == "texts"


def test_check_call_embed_query() -> None:
    check_call("embed_query", ["short"], {}, SETTINGS)
    err = invalid(check_call, "embed_query", [], {"query": "q" * (MAX_CHARS + 1)}, SETTINGS)
    assert err.field == "query"
    assert str(err).startswith("query: ") and f"limit is {MAX_CHARS}" in str(err)
    err = invalid(check_call, "embed_query", [["not", "a", "string"]], {}, SETTINGS)
    assert err.field == "query" and "got list" in str(err)


def test_check_call_leaves_unknown_methods_to_the_provider() -> None:
    check_call("get_document", ["x" * 1000], {}, SETTINGS)
    check_call("no_such_method", [["x"] * 1000], {"top_k": 10**9}, SETTINGS)


DOC = VectorDocument(id="d", content="fine")
LONG_DOC = VectorDocument(id="d", content="x" * (MAX_CHARS + 1))


# (method, args, kwargs, field, setting): one over-limit call per check, positional or by name.
OVER_LIMIT = [
    ("store_documents", [[DOC] * (MAX_ITEMS + 1)], {}, "documents", "max_items_per_request"),
    ("store_documents", [], {"documents": [DOC, LONG_DOC]}, "documents[1].content", "max_chars_per_text"),
    ("store_documents", [[{"id": "a", "content": "y" * (MAX_CHARS + 1)}]], {}, "documents[0].content",
     "max_chars_per_text"),
    ("store_document", [LONG_DOC], {}, "document.content", "max_chars_per_text"),
    ("update_document", [], {"document": LONG_DOC}, "document.content", "max_chars_per_text"),
    ("delete_documents", [["i"] * (MAX_ITEMS + 1)], {}, "document_ids", "max_items_per_request"),
    ("search_by_ids", [], {"document_ids": ["i"] * (MAX_ITEMS + 1)}, "document_ids", "max_items_per_request"),
    ("search_similar", [[0.1], MAX_TOP_K + 1], {}, "top_k", "max_top_k"),
    ("search_similar", [[0.1]], {"top_k": MAX_TOP_K + 1}, "top_k", "max_top_k"),
    ("hybrid_search", [[0.1], "t" * (MAX_CHARS + 1)], {}, "text_query", "max_chars_per_text"),
    ("hybrid_search", [[0.1], "text"], {"top_k": MAX_TOP_K + 1}, "top_k", "max_top_k"),
    ("list_documents", [MAX_TOP_K + 1], {}, "limit", "max_top_k"),
    ("list_documents_after", [None], {"limit": MAX_TOP_K + 1}, "limit", "max_top_k"),
    ("rerank", ["q", [RerankCandidate(id="c", content="x")] * (MAX_TEXTS + 1)], {}, "candidates",
     "max_texts_per_request"),
    ("rerank", ["q" * (MAX_CHARS + 1), []], {}, "query", "max_chars_per_text"),
    ("rerank_with_fusion", ["q"], {"candidates": [{"id": "c", "content": "z" * (MAX_CHARS + 1)}]},
     "candidates[0].content", "max_chars_per_text"),
    ("batch_score_pairs", ["q", ["d"] * (MAX_TEXTS + 1)], {}, "documents", "max_texts_per_request"),
    ("batch_score_pairs", ["q", ["d", "e" * (MAX_CHARS + 1)]], {}, "documents[1]", "max_chars_per_text"),
    ("score_pair", ["q", "d" * (MAX_CHARS + 1)], {}, "document", "max_chars_per_text"),
    ("create_entities", [[{}] * (MAX_ITEMS + 1)], {}, "entities", "max_items_per_request"),
    ("create_relationships", [], {"relationships": [{}] * (MAX_ITEMS + 1)}, "relationships",
     "max_items_per_request"),
    ("find_entities", ["Person", None, MAX_TOP_K + 1], {}, "limit", "max_top_k"),
    ("get_connected_entities", ["e", None, MAX_DEPTH + 1], {}, "max_depth", "max_graph_depth"),
    ("get_connected_entities", ["e"], {"max_depth": MAX_DEPTH + 1, "as_of": None}, "max_depth",
     "max_graph_depth"),
    ("find_path", ["a", "b", MAX_DEPTH + 1], {}, "max_depth", "max_graph_depth"),
    ("get_graph_as_of", [None, "e"], {"max_depth": MAX_DEPTH + 1}, "max_depth", "max_graph_depth"),
    ("execute_cypher", ["M" * (MAX_CHARS + 1)], {}, "query", "max_chars_per_text"),
    ("execute", [], {"query": "x" * (MAX_CHARS + 1)}, "query", "max_chars_per_text"),
    ("execute_in_transaction", [[("RETURN 1", None)] * (MAX_ITEMS + 1)], {}, "statements",
     "max_items_per_request"),
    ("add_episode", ["c" * (MAX_CHARS + 1), None], {}, "content", "max_chars_per_text"),
    ("add_episode", ["c", None, [{}] * (MAX_ITEMS + 1)], {}, "entities", "max_items_per_request"),
    ("add_episode", ["c", None], {"relationships": [{}] * (MAX_ITEMS + 1)}, "relationships",
     "max_items_per_request"),
    ("search", ["q", None, None, MAX_TOP_K + 1], {}, "limit", "max_top_k"),
    ("get_many", [["k"] * (MAX_ITEMS + 1)], {}, "keys", "max_items_per_request"),
    ("set_many", [{str(i): i for i in range(MAX_ITEMS + 1)}], {}, "items", "max_items_per_request"),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "field", "setting"), OVER_LIMIT,
                         ids=[f"{c[0]}-{c[3]}" for c in OVER_LIMIT])
def test_check_call_names_the_field_and_the_registry_setting(method: str, args: list, kwargs: dict, field: str,
                                                              setting: str) -> None:
    err = invalid(check_call, method, args, kwargs, SETTINGS)
    assert err.field == field
    assert f"(registry.{setting})" in str(err)
    assert f"the limit is {getattr(SETTINGS, setting)}" in str(err)


@pytest.mark.parametrize(("method", "args", "kwargs", "field", "setting"), OVER_LIMIT,
                         ids=[f"{c[0]}-{c[3]}" for c in OVER_LIMIT])
def test_check_call_passes_at_the_limit(method: str, args: list, kwargs: dict, field: str, setting: str) -> None:
    """The same calls with every setting one larger pass: each case fails for its own limit only."""
    roomy = SETTINGS.model_copy(update={setting: getattr(SETTINGS, setting) + 1})
    check_call(method, args, kwargs, roomy)


def test_check_call_leaves_types_and_values_to_the_provider() -> None:
    for method, args in [("search_similar", [[0.1], "ten"]), ("search_similar", [[0.1], True]),
                         ("find_path", ["a", "b", 0]), ("store_documents", ["not a list"]),
                         ("rerank", [7, None]), ("add_episode", [None, None, "x"])]:
        check_call(method, args, {}, SETTINGS)


def test_check_tree_names_the_path_of_a_long_string_or_list() -> None:
    check_tree({"memories": [{"content": "x" * MAX_CHARS}] * MAX_ITEMS}, "arguments", SETTINGS)
    err = invalid(check_tree, {"memories": [{"content": "ok"}, {"content": "x" * (MAX_CHARS + 1)}]},
                  "arguments", SETTINGS)
    assert err.field == "arguments.memories[1].content" and "(registry.max_chars_per_text)" in str(err)
    err = invalid(check_tree, {"a": {"b": list(range(MAX_ITEMS + 1))}}, "arguments", SETTINGS)
    assert err.field == "arguments.a.b" and "(registry.max_items_per_request)" in str(err)


def test_check_tree_reports_the_first_problem_in_document_order() -> None:
    long = "x" * (MAX_CHARS + 1)
    err = invalid(check_tree, {"first": long, "second": [long]}, "arguments", SETTINGS)
    assert err.field == "arguments.first"


def test_check_tree_survives_nesting_deeper_than_the_recursion_limit() -> None:
    deep: Any = "x" * (MAX_CHARS + 1)
    for _ in range(5000):
        deep = [deep]
    err = invalid(check_tree, deep, "arguments", SETTINGS)
    assert err.field == "arguments" + "[0]" * 5000


def test_limit_error_shape() -> None:
    err = limit_error("is 11", 10, "registry.max_top_k", "top_k")
    assert str(err) == "top_k: is 11; the limit is 10 (registry.max_top_k)" and err.field == "top_k"


def test_errors_are_http_400() -> None:
    assert invalid(check_text, 1, "query", MAX_CHARS).http_status == 400


# -- request bodies (deployments/http_api.py) ------------------------------------------------

def _request(chunks: list[bytes], content_length: int | None = None, readable: bool = True) -> Any:
    from starlette.requests import Request

    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        assert readable, "the body was read although its declared length was over the limit"
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    request = Request(scope, receive)
    request.pending = pending  # what the client has not sent yet
    return request


async def test_a_body_within_the_limit_is_read_whole() -> None:
    from deployments.http_api import read_body, read_json_object

    assert await read_body(_request([b"ab", b"cd"], 4), 4) == b"abcd"
    assert await read_json_object(_request([b'{"a":', b" 1}"]), 1024) == {"a": 1}


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    from deployments.http_api import read_body

    with pytest.raises(RequestTooLargeError) as info:
        await read_body(_request([b"x" * 10], 10, readable=False), 9)
    err = info.value
    assert (err.http_status, err.field) == (413, "body")
    assert str(err) == "body: is 10 bytes; the limit is 9 (registry.max_request_bytes)"


async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    from deployments.http_api import read_body

    chunks = [b"x" * 4] * 3 + [b"never read"]  # a client that declares no length (chunked)
    request = _request(chunks)
    with pytest.raises(RequestTooLargeError, match=r"is over 9 bytes; the limit is 9 \(registry.max_request_bytes\)"):
        await read_body(request, 9)
    assert request.pending == [b"never read"]  # it stopped at the chunk that passed the limit


def test_the_body_limit_is_a_registry_setting_with_a_16_mib_default() -> None:
    assert RegistrySettings().max_request_bytes == 16 * 2**20
    with pytest.raises(ValueError):
        RegistrySettings(max_request_bytes=10)


def test_renamed_errors_keep_their_class_and_unwrap_ray_wrappers() -> None:
    from deployments.http_api import rename_field

    class RayTaskError(Exception):  # what a handle raises: the provider's error as .cause
        def __init__(self, cause: BaseException) -> None:
            super().__init__("wrapped")
            self.cause = cause

    inner = InvalidRequestError("has 9 candidates; the limit is 3 (config.max_candidates)", "candidates")
    renamed = rename_field(RayTaskError(inner), "candidates", "documents")
    assert isinstance(renamed, InvalidRequestError) and renamed.field == "documents"
    assert str(renamed) == "documents: has 9 candidates; the limit is 3 (config.max_candidates)"
    big = rename_field(RequestTooLargeError("is 5 bytes", "texts"), "texts", "input")
    assert isinstance(big, RequestTooLargeError) and big.field == "input"


# -- tools' schemas and rerankers' own limits (deployments/tools_api.py) ---------------------

SCHEMA = {"type": "object", "properties": {
    "memories": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 5}},
    "top_k": {"type": "integer", "maximum": 10}, "filters": {"type": "object", "maxProperties": 1},
    "score": {"type": "number", "exclusiveMaximum": 1}}}


@pytest.mark.parametrize(("arguments", "field", "message"), [
    ({"memories": ["a", "b", "c"]}, "arguments.memories", "has 3 items; the limit is 2 (maxItems in the tool's schema)"),
    ({"memories": ["toolong"]}, "arguments.memories[0]", "has 7 characters; the limit is 5 (maxLength in the tool's schema)"),
    ({"top_k": 11}, "arguments.top_k", "is 11; the limit is 10 (maximum in the tool's schema)"),
    ({"filters": {"a": 1, "b": 2}}, "arguments.filters", "has 2 properties; the limit is 1 (maxProperties in the tool's schema)"),
    ({"score": 1}, "arguments.score", "is 1; the limit is 1 (exclusiveMaximum in the tool's schema)"),
])
def test_a_broken_schema_limit_names_the_keyword_and_the_schema(arguments: dict, field: str, message: str) -> None:
    from deployments.tools_api import schema_error

    err = schema_error(SCHEMA, arguments, owner="the tool's schema")
    assert err is not None and err.field == field
    assert str(err) == f"{field}: {message}"


def test_other_schema_errors_keep_jsonschema_s_message() -> None:
    from deployments.tools_api import schema_error

    err = schema_error(SCHEMA, {"top_k": "ten"})
    assert err is not None and err.field == "arguments.top_k" and "is not of type 'integer'" in str(err)
    assert "limit" not in str(err)


class _Host:
    """What the argument guard uses of the core: describe, settings."""

    def __init__(self, getters: dict[str, Any] | Exception) -> None:
        self.getters = getters
        self.settings = SETTINGS
        self.described = 0

    async def describe(self, ptype: Any, name: str) -> dict[str, Any]:
        self.described += 1
        if isinstance(self.getters, Exception):
            raise self.getters
        return {"getters": self.getters}


class _Checks:
    """The argument guard over a host, as the core runs it before a call."""

    def __init__(self, getters: dict[str, Any] | Exception) -> None:
        from deployments.tools_api import ArgumentGuard

        self.host, self.guard = _Host(getters), ArgumentGuard()

    @property
    def described(self) -> int:
        return self.host.described

    async def _check_arguments(self, route: Any, method: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        await self.guard.before_call(self.host, route, method, args, kwargs)


def _ops(getters: dict[str, Any] | Exception) -> Any:
    return _Checks(getters)


def _route(ptype: str, name: str) -> Any:
    from providers.registry.config import ProviderSpec
    from providers.registry.table import Route
    from providers.types import ProviderType

    return Route(type=ProviderType.parse(ptype), name=name, spec=ProviderSpec(**{"class": "providers.x.Y"}))


async def test_the_router_refuses_more_candidates_than_the_reranker_takes() -> None:
    ops = _ops({"get_max_candidates": 2})
    reranker = _route("rerankers", "tiny")
    await ops._check_arguments(reranker, "rerank", ["q", ["a", "b"]], {})
    with pytest.raises(InvalidRequestError) as info:
        await ops._check_arguments(reranker, "rerank", ["q"], {"candidates": ["a", "b", "c"]})
    assert info.value.field == "candidates"
    assert str(info.value) == ("candidates: has 3 candidates; the limit is 2 "
                               "(config.max_candidates of reranker 'tiny')")
    with pytest.raises(InvalidRequestError) as info:
        await ops._check_arguments(reranker, "batch_score_pairs", ["q", ["a", "b", "c"]], {})
    assert info.value.field == "documents"


async def test_a_reranker_that_cannot_describe_itself_is_left_to_its_own_check() -> None:
    ops = _ops(RuntimeError("replica down"))
    await ops._check_arguments(_route("rerankers", "r"), "rerank", ["q", ["a"] * 100], {})
    assert ops.described == 1


async def test_other_methods_and_types_ask_nothing() -> None:
    ops = _ops({"get_max_candidates": 1})
    await ops._check_arguments(_route("rerankers", "r"), "score_pair", ["q", "a"], {})
    await ops._check_arguments(_route("embeddings", "e"), "embed_texts", [["a", "b"]], {})
    assert ops.described == 0


async def test_tool_arguments_keep_within_the_registry_limits_too() -> None:
    ops = _ops({"get_input_schema": {"type": "object"}})
    tool = _route("tools", "memory.store")
    await ops._check_arguments(tool, "invoke", [{"memories": [{"content": "x" * MAX_CHARS}]}], {})
    with pytest.raises(InvalidRequestError) as info:
        await ops._check_arguments(tool, "invoke", [{"memories": [{"content": "x" * (MAX_CHARS + 1)}]}], {})
    assert info.value.field == "arguments.memories[0].content"
    assert "(registry.max_chars_per_text)" in str(info.value)


async def test_a_tool_schema_limit_names_the_tool() -> None:
    ops = _ops({"get_input_schema": {"type": "object", "properties": {"top_k": {"maximum": 100}}}})
    with pytest.raises(InvalidRequestError) as info:
        await ops._check_arguments(_route("tools", "memory.search"), "invoke", [{"top_k": 101}], {})
    assert str(info.value) == "arguments.top_k: is 101; the limit is 100 (maximum in the input schema of memory.search)"


# -- episodes (providers/graph/temporal_manager.py) --------------------------------------------

@pytest.mark.parametrize("field", ["entities", "relationships"])
async def test_an_episode_over_max_episode_items_is_refused_before_any_graph_work(field: str) -> None:
    from providers.graph.temporal_manager import TemporalGraphManager, TemporalManagerConfig
    from providers.registry.config import parse_provider_config

    manager = TemporalGraphManager()  # no registry: any engine call would fail differently
    manager.cfg = parse_provider_config(TemporalManagerConfig, {"graph_engine": "g", "max_episode_items": 2})
    with pytest.raises(InvalidRequestError) as info:
        await manager.add_episode("content", datetime.now(timezone.utc), **{field: [{}] * 3})
    assert info.value.field == field
    assert str(info.value) == f"{field}: has 3 items; the limit is 2 (config.max_episode_items)"
