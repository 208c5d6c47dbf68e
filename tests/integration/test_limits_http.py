"""Every input limit over HTTP: one request over each, answered with a 4xx whose
``error.param`` names the field and whose message names the limit's setting.

The session's registry (conftest) has max_texts_per_request 128 and
max_chars_per_text 5000; the other registry limits have their defaults.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

MAX_TEXTS, MAX_CHARS = 128, 5000
MAX_ITEMS, MAX_TOP_K, MAX_DEPTH, MAX_BYTES = 10_000, 10_000, 10, 16 * 2**20
LONG = "x" * (MAX_CHARS + 1)
ENTITY = "limits-probe"


def refused(r: httpx.Response, status: int, param: str, limit: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param, error
    assert f"({limit}" in error["message"], error


@pytest.fixture(scope="module")
def http(registry):
    with httpx.Client(base_url=registry["http"], timeout=120) as client:
        r = client.post("/v1/graph/ladybug/entities",
                        json={"entities": [{"id": ENTITY, "name": "Limits probe", "entity_type": "LimitsProbe"}]})
        assert r.status_code == 200, r.text
        yield client


def test_a_body_over_max_request_bytes_is_413_whether_declared_or_chunked(http):
    body = b'{"model": "minilm", "input": ["' + b"x" * MAX_BYTES + b'"]}'
    refused(http.post("/v1/embeddings", content=body), 413, "body", "registry.max_request_bytes")

    def chunks():  # no Content-Length: Transfer-Encoding chunked
        for start in range(0, len(body), 1 << 20):
            yield body[start:start + (1 << 20)]

    refused(http.post("/v1/graph/ladybug/cypher", content=chunks()), 413, "body", "registry.max_request_bytes")


@pytest.mark.parametrize(("path", "body", "param", "limit"), [
    ("/v1/embeddings", {"model": "minilm", "input": ["a"] * (MAX_TEXTS + 1)}, "input", "registry.max_texts_per_request"),
    ("/v1/embeddings", {"model": "minilm", "input": ["a", LONG]}, "input[1]", "registry.max_chars_per_text"),
    # vector stores
    ("/v1/vector_stores/memories/documents", {"documents": [{"content": "a"}] * (MAX_ITEMS + 1)}, "documents",
     "registry.max_items_per_request"),
    ("/v1/vector_stores/memories/documents", {"documents": [{"content": "a"}] * (MAX_TEXTS + 1)}, "documents",
     "registry.max_texts_per_request"),
    ("/v1/vector_stores/memories/documents", {"documents": [{"content": "a"}, {"content": LONG}]},
     "documents[1].content", "registry.max_chars_per_text"),
    ("/v1/vector_stores/memories/search", {"text": "cats", "top_k": 1001}, "top_k", "config.max_top_k"),
    ("/v1/vector_stores/memories/search", {"text": "cats", "top_k": MAX_TOP_K + 1}, "top_k", "registry.max_top_k"),
    ("/v1/vector_stores/memories/search", {"text": LONG}, "text", "registry.max_chars_per_text"),
    # rerankers
    ("/v1/rerank", {"model": "similarity", "query": "q", "documents": ["d"] * (MAX_TEXTS + 1)}, "documents",
     "registry.max_texts_per_request"),
    ("/v1/rerank", {"model": "similarity", "query": LONG, "documents": ["d"]}, "query", "registry.max_chars_per_text"),
    # the knowledge graph
    ("/v1/graph/ladybug/entities", {"entities": [{"id": f"e{i}", "name": "n", "entity_type": "T"}
                                                 for i in range(MAX_ITEMS + 1)]},
     "entities", "registry.max_items_per_request"),
    ("/v1/graph/ladybug/relationships", {"relationships": [
        {"id": f"r{i}", "source_id": ENTITY, "target_id": ENTITY, "relationship_type": "SELF"}
        for i in range(MAX_ITEMS + 1)]}, "relationships", "registry.max_items_per_request"),
    ("/v1/graph/ladybug/cypher", {"query": f"RETURN '{LONG}' AS x"}, "query", "registry.max_chars_per_text"),
    ("/v1/graph/people/episodes", {"content": LONG}, "content", "registry.max_chars_per_text"),
    ("/v1/graph/people/episodes", {"content": "a crowd", "entities": [{"name": f"p{i}", "entity_type": "Person"}
                                                                   for i in range(1001)]},
     "entities", "config.max_episode_items"),
    # tools: their schemas' limits, and the registry's on every string
    ("/v1/tools/memory.store", {"memories": [{"content": "m"}] * 257}, "memories",
     "maxItems in the input schema of memory.store"),
    # within the tool's schema, over what its embedder takes in one call: named as the caller's field
    ("/v1/tools/memory.store", {"memories": [{"content": "m"}] * (MAX_TEXTS + 1)}, "memories",
     "registry.max_texts_per_request"),
    ("/v1/tools/memory.search", {"query": "q", "top_k": 101}, "top_k", "maximum in the input schema of memory.search"),
    ("/v1/tools/memory.search", {"query": LONG}, "query", "registry.max_chars_per_text"),
])
def test_an_over_limit_body_is_400_naming_field_and_limit(http, path: str, body: dict[str, Any], param: str,
                                                          limit: str):
    refused(http.post(path, json=body), 400, param, limit)


@pytest.mark.parametrize(("path", "params", "param", "limit"), [
    ("/v1/graph/ladybug/entities", {"limit": MAX_TOP_K + 1}, "limit", "registry.max_top_k"),
    (f"/v1/graph/ladybug/neighbors/{ENTITY}", {"depth": 6}, "depth", "config.max_depth"),
    (f"/v1/graph/ladybug/neighbors/{ENTITY}", {"depth": MAX_DEPTH + 1}, "depth", "registry.max_graph_depth"),
    ("/v1/graph/ladybug/path", {"source": ENTITY, "target": ENTITY, "max_depth": MAX_DEPTH + 1}, "max_depth",
     "registry.max_graph_depth"),
    ("/v1/graph/people/as_of", {"as_of": "2024-01-01T00:00:00+00:00", "entity_id": ENTITY, "depth": 4}, "depth",
     "config.max_depth"),
])
def test_an_over_limit_query_parameter_is_400_naming_it_and_the_limit(http, path: str, params: dict[str, Any],
                                                                      param: str, limit: str):
    refused(http.get(path, params=params), 400, param, limit)


async def test_the_router_refuses_more_candidates_than_the_reranker_takes(http):
    from serve_app import ProviderType, provider_registry

    await provider_registry.register_provider(
        ProviderType.RERANKER, "tiny-rerank", "providers.rerankers.embedding_similarity.EmbeddingSimilarityReranker",
        config={"embedder": "minilm", "max_candidates": 3}, depends_on=["embeddings/minilm"],
        deployment={"num_cpus": 0.1})
    try:
        ok = http.post("/v1/rerank", json={"model": "tiny-rerank", "query": "cats", "documents": ["a", "b", "c"]})
        assert ok.status_code == 200, ok.text
        r = http.post("/v1/rerank", json={"model": "tiny-rerank", "query": "cats", "documents": ["a", "b", "c", "d"]})
        refused(r, 400, "documents", "config.max_candidates of reranker 'tiny-rerank'")
    finally:
        await provider_registry.delete_provider(ProviderType.RERANKER, "tiny-rerank")
