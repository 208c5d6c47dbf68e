"""Input limits (providers/registry/limits.py): every error names the field and the limit."""

from __future__ import annotations

from typing import Any

import pytest

from providers.errors import InvalidRequestError
from providers.registry.limits import check_call, check_text, check_texts

MAX_TEXTS = 4
MAX_CHARS = 10


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
    check_call("embed_texts", [["a"]], {}, MAX_TEXTS, MAX_CHARS)
    check_call("embed_texts", [], {"texts": ["a"], "batch_size": 2}, MAX_TEXTS, MAX_CHARS)
    err = invalid(check_call, "embed_texts", [], {"texts": ["a"] * (MAX_TEXTS + 1)}, MAX_TEXTS, MAX_CHARS)
    assert err.field == "texts"
    err = invalid(check_call, "embed_texts", [["a", "b", "c", "z" * 11]], {}, MAX_TEXTS, MAX_CHARS)
    assert err.field == "texts[3]"


def test_check_call_embed_texts_missing_argument() -> None:
    err = invalid(check_call, "embed_texts", [], {}, MAX_TEXTS, MAX_CHARS)
    assert err.field == "texts"


def test_check_call_embed_query() -> None:
    check_call("embed_query", ["short"], {}, MAX_TEXTS, MAX_CHARS)
    err = invalid(check_call, "embed_query", [], {"query": "q" * (MAX_CHARS + 1)}, MAX_TEXTS, MAX_CHARS)
    assert err.field == "query"
    assert str(err).startswith("query: ") and f"limit is {MAX_CHARS}" in str(err)
    err = invalid(check_call, "embed_query", [["not", "a", "string"]], {}, MAX_TEXTS, MAX_CHARS)
    assert err.field == "query" and "got list" in str(err)


def test_check_call_leaves_other_methods_to_the_provider() -> None:
    check_call("rerank", ["q" * 1000, ["x"] * 1000], {}, MAX_TEXTS, MAX_CHARS)


def test_errors_are_http_400() -> None:
    assert invalid(check_text, 1, "query", MAX_CHARS).http_status == 400
