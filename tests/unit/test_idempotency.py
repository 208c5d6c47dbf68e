"""providers/idempotency.py: ids that repeat for the same request and only for it."""

from __future__ import annotations

import uuid

from providers.idempotency import MAX_KEY_CHARS, write_id


def test_the_same_request_gets_the_same_ids():
    assert write_id("req-1", "vector_stores/docs", 0, "a") == write_id("req-1", "vector_stores/docs", 0, "a")


def test_any_other_part_changes_the_id():
    base = write_id("req-1", "vector_stores/docs", 0, "a")
    others = {write_id("req-2", "vector_stores/docs", 0, "a"), write_id("req-1", "vector_stores/other", 0, "a"),
              write_id("req-1", "vector_stores/docs", 1, "a"), write_id("req-1", "vector_stores/docs", 0, "b")}
    assert base not in others and len(others) == 4


def test_without_a_key_every_id_is_fresh():
    ids = {write_id(None, "s", 0, "a"), write_id("", "s", 0, "a"), write_id(None, "s", 0, "a")}
    assert len(ids) == 3
    assert all(uuid.UUID(i) for i in ids)


def test_a_long_key_is_cut_not_refused():
    long = "k" * (MAX_KEY_CHARS + 50)
    assert write_id(long, "s", 0, "a") == write_id(long[:MAX_KEY_CHARS] + "different tail", "s", 0, "a")
