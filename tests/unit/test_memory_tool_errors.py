"""memory.store names the caller's field when its embedder refuses the texts."""

from __future__ import annotations

from providers.errors import InvalidRequestError
from providers.tools.memory import as_memories_error


def test_texts_errors_name_the_memories_the_caller_sent():
    whole = as_memories_error(InvalidRequestError("has 300 items; the limit is 128 (registry.max_texts_per_request)",
                                                  "texts"))
    assert whole.field == "memories" and str(whole).startswith("memories: has 300 items")
    one = as_memories_error(InvalidRequestError("has 9000 characters; the limit is 5000", "texts[3]"))
    assert one.field == "memories[3].content" and "9000 characters" in str(one)


def test_other_errors_pass_through_unchanged():
    other = InvalidRequestError("bad", "model")
    assert as_memories_error(other) is other
    assert as_memories_error(InvalidRequestError("bad", "textsx")).field == "textsx"
