"""Writes without ids, sent twice with one x-request-id, store their items once (issue 13, part 2).

HAProxy retries a request whose router replica died without answering
(serve_app/ingress.py, RETRY_ON); the retry carries the x-request-id HAProxy gave
the first try, so the ids the router derives from it (providers/idempotency.py)
repeat and the store upserts instead of adding a copy. Here the client sends the
header itself: HAProxy keeps one that is present, and the retry is the same bytes
sent again, so this is the retry's path without a replica having to die.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

pytestmark = pytest.mark.integration


def upsert(registry, body, request_id=None):
    headers = {"x-request-id": request_id} if request_id else {}
    r = httpx.post(f"{registry['http']}/v1/vector_stores/memories/documents", json=body, headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["ids"]


def copies(registry, tag):
    r = httpx.post(f"{registry['http']}/v1/vector_stores/memories/search", timeout=120,
                   json={"text": f"note {tag}", "top_k": 10, "filters": {"tag": tag}})
    assert r.status_code == 200, r.text
    return sorted(h["id"] for h in r.json()["results"])


def test_a_document_write_sent_again_with_its_request_id_is_stored_once(registry):
    tag = uuid.uuid4().hex
    body = {"documents": [{"content": f"note {tag} one", "metadata": {"tag": tag}},
                          {"content": f"note {tag} two", "metadata": {"tag": tag}}]}
    rid = f"req-{tag}"
    first, again = upsert(registry, body, rid), upsert(registry, body, rid)
    try:
        assert first == again and len(set(first)) == 2
        assert copies(registry, tag) == sorted(first)
        # A request id reused for other content never overwrites: the content is in the id.
        other = upsert(registry, {"documents": [{"content": f"note {tag} three", "metadata": {"tag": tag}}]}, rid)
        assert other[0] not in first
        # Without a request id of the caller's, HAProxy (or the router) makes a fresh one per request.
        fresh = upsert(registry, body)
        assert not set(fresh) & set(first)
        assert len(copies(registry, tag)) == 5
    finally:
        for doc_id in {*first, *other, *fresh}:
            httpx.delete(f"{registry['http']}/v1/vector_stores/memories/documents/{doc_id}", timeout=60)


def test_memory_store_sent_again_with_its_request_id_returns_the_same_ids(registry):
    tag = uuid.uuid4().hex
    args = {"memories": [{"content": f"remember {tag}"}, {"content": f"and also {tag}"}], "source": "idem-test"}
    url = f"{registry['http']}/v1/tools/memory.store"
    runs = [httpx.post(url, json=args, headers={"x-request-id": f"req-{tag}"}, timeout=120) for _ in range(2)]
    assert all(r.status_code == 200 for r in runs), [r.text for r in runs]
    first, again = (r.json()["result"]["ids"] for r in runs)
    assert first == again and len(set(first)) == 2
    # The tool's own idempotency_key argument does the same for callers of the seed's API.
    keyed = [httpx.post(url, json={**args, "idempotency_key": f"key-{tag}"}, timeout=120) for _ in range(2)]
    assert keyed[0].json()["result"]["ids"] == keyed[1].json()["result"]["ids"] != first
    different = httpx.post(url, json=args, headers={"x-request-id": f"other-{tag}"}, timeout=120)
    assert set(different.json()["result"]["ids"]).isdisjoint(first)
