"""Input checks that apply whoever calls (HTTP or a Python handle).

Each limit exists because the input costs resources: every text is a model
forward pass, every character is tokenizer work.
"""

from __future__ import annotations

from typing import Any

from providers.errors import InvalidRequestError


def check_texts(texts: Any, field: str, max_texts: int, max_chars: int) -> list[str]:
    if isinstance(texts, str):
        raise InvalidRequestError("must be a list of strings, not one string", field)
    if not isinstance(texts, (list, tuple)):
        raise InvalidRequestError(f"must be a list of strings, got {type(texts).__name__}", field)
    if not texts:
        raise InvalidRequestError("must not be empty", field)
    if len(texts) > max_texts:
        raise InvalidRequestError(f"has {len(texts)} items; the limit is {max_texts} (max_texts_per_request)", field)
    for i, text in enumerate(texts):
        check_text(text, f"{field}[{i}]", max_chars)
    return list(texts)


def check_text(text: Any, field: str, max_chars: int) -> str:
    if not isinstance(text, str):
        raise InvalidRequestError(f"must be a string, got {type(text).__name__}", field)
    if len(text) > max_chars:
        raise InvalidRequestError(f"has {len(text)} characters; the limit is {max_chars} (max_chars_per_text)", field)
    return text


def check_call(method: str, args: list[Any], kwargs: dict[str, Any], max_texts: int, max_chars: int) -> None:
    """Checks for the methods whose inputs we know; other methods are the provider's to check."""
    if method == "embed_texts":
        texts = args[0] if args else kwargs.get("texts")
        check_texts(texts, "texts", max_texts, max_chars)
    elif method == "embed_query":
        check_text(args[0] if args else kwargs.get("query"), "query", max_chars)
