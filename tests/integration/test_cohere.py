"""Cohere's API on real Ray Serve: the official ``cohere`` client against the registry's
``/v1/embed``, ``/v2/embed``, ``/v1/rerank`` and ``/v2/rerank``, and the registry's
own Cohere providers pointed at those endpoints.

Vectors must equal the packaged MiniLM's own (``reference_model``); rerank
scores must equal the similarity reranker's cosines mapped by
``(cos + 1) / 2`` into Cohere's [0, 1], best first.
"""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from serve_app import ProviderType, provider_registry

pytestmark = pytest.mark.integration
cohere = pytest.importorskip("cohere")

TEXTS = ["hello", "The cat sits on the mat.", "Ray Serve routes requests"]
QUERY = "What is the capital of the United States?"
DOCS = ["Carson City is the capital of Nevada.", "Washington, D.C. is the capital of the United States.",
        "Capital punishment has existed in the United States since before it was a country.",
        "The kitten chased a ball of yarn."]  # cosine -0.054 with QUERY (MiniLM)
EMBEDDER = "providers.embeddings.cohere.CohereEmbedder"
RERANKER = "providers.rerankers.cohere.CohereReranker"


@pytest.fixture(scope="module")
def expected_relevance(reference_model):
    """The similarity reranker's cosines (MiniLM's vectors are unit length), mapped into [0, 1]."""
    q = reference_model.encode([QUERY], normalize_embeddings=True)[0]
    d = reference_model.encode(DOCS, normalize_embeddings=True)
    scores = (d @ q + 1.0) / 2.0
    assert scores.min() < 0.5  # a negative cosine among them: the mapping is exercised
    return scores


def _v1(registry):
    return cohere.Client(api_key="unused", base_url=registry["http"], timeout=60)


def _v2(registry):
    return cohere.ClientV2(api_key="unused", base_url=registry["http"], timeout=60)


def test_client_v1_embed_gets_the_models_own_vectors(registry, reference_model):
    expected = reference_model.encode(TEXTS, normalize_embeddings=True)
    co = _v1(registry)
    for input_type in ("search_document", "search_query"):  # MiniLM embeds both alike
        plain = co.embed(texts=TEXTS, model="minilm", input_type=input_type)
        assert plain.response_type == "embeddings_floats" and plain.texts == TEXTS
        np.testing.assert_allclose(np.array(plain.embeddings, dtype=np.float32), expected, atol=1e-5)
    by_type = co.embed(texts=TEXTS, model="minilm", input_type="search_document", embedding_types=["float"])
    assert by_type.response_type == "embeddings_by_type"
    np.testing.assert_allclose(np.array(by_type.embeddings.float_, dtype=np.float32), expected, atol=1e-5)


def test_client_v2_embed_gets_the_models_own_vectors(registry, reference_model):
    expected = reference_model.encode(TEXTS, normalize_embeddings=True)
    co = _v2(registry)
    resp = co.embed(texts=TEXTS, model="minilm", input_type="search_query", embedding_types=["float", "base64"])
    np.testing.assert_allclose(np.array(resp.embeddings.float_, dtype=np.float32), expected, atol=1e-5)
    decoded = np.stack([np.frombuffer(base64.b64decode(s), dtype="<f4") for s in resp.embeddings.base64])
    np.testing.assert_array_equal(decoded, np.array(resp.embeddings.float_, dtype=np.float32))
    assert resp.meta.api_version.version == "2" and resp.id


def test_client_v1_rerank_orders_with_scores_in_the_unit_interval(registry, expected_relevance):
    resp = _v1(registry).rerank(model="similarity", query=QUERY, documents=DOCS, top_n=2, return_documents=True)
    order = list(np.argsort(-expected_relevance))
    assert [r.index for r in resp.results] == order[:2] and order[0] == 1
    assert resp.results[0].document.text == DOCS[1]
    np.testing.assert_allclose([r.relevance_score for r in resp.results], expected_relevance[order[:2]], atol=1e-5)


def test_client_v2_rerank_orders_with_scores_in_the_unit_interval(registry, expected_relevance):
    resp = _v2(registry).rerank(model="similarity", query=QUERY, documents=DOCS)
    order = list(np.argsort(-expected_relevance))
    assert [r.index for r in resp.results] == order
    scores = [r.relevance_score for r in resp.results]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(scores, expected_relevance[order], atol=1e-5)
    assert all(getattr(r, "document", None) is None for r in resp.results)  # v2 echoes no text


def test_client_errors_keep_the_registry_shape(registry):
    co = _v2(registry)
    with pytest.raises(cohere.errors.BadRequestError) as err:
        co.embed(texts=[], model="minilm", input_type="search_document")
    assert err.value.body["error"]["param"] == "texts"
    with pytest.raises(cohere.errors.NotFoundError) as err:
        co.rerank(model="no-such-reranker", query="q", documents=["d"])
    assert err.value.body["error"]["param"] == "model" and "similarity" in err.value.body["error"]["message"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/embed", {"model": "minilm", "texts": ["a", "b", 3]}, "texts[2]"),
    ("/v2/embed", {"model": "minilm", "texts": ["x" * 5001], "input_type": "search_query"}, "texts[0]"),
    ("/v2/embed", {"model": "minilm", "texts": ["a"], "input_type": "search_query", "output_dimension": 12},
     "output_dimension"),
    ("/v1/rerank", {"model": "similarity", "query": "q", "documents": ["a", "b", "c", {"text": None}]},
     "documents[3].text"),
    ("/v2/rerank", {"model": "similarity", "query": "q", "documents": ["a", "b", "c", 4]}, "documents[3]"),
    ("/v2/rerank", {"model": "similarity", "query": "   ", "documents": ["a"]}, "query"),
])
def test_refusals_name_the_field(registry, path, body, field):
    r = httpx.post(registry["http"] + path, json=body, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == field


async def test_cohere_providers_in_process_against_our_endpoints(registry, reference_model, expected_relevance):
    """Both API generations and both wire formats, with the providers in this process."""
    from providers.embeddings.cohere import CohereEmbedder
    from providers.rerankers.cohere import CohereReranker

    expected = reference_model.encode(TEXTS, normalize_embeddings=True)
    for version, wire in (("v1", "base64"), ("v2", "float")):
        embedder = CohereEmbedder()
        await embedder.initialize({"base_url": registry["http"], "model": "minilm", "api_version": version,
                                   "embedding_type": wire, "batch_size": 2})
        try:
            assert embedder.get_dimension() == 384
            np.testing.assert_allclose(np.stack(await embedder.embed_texts(TEXTS)), expected, atol=1e-5)
            np.testing.assert_allclose(await embedder.embed_query(TEXTS[1]), expected[1], atol=1e-5)
            assert (await embedder.health_check())["status"] == "healthy"
        finally:
            await embedder.close()
        reranker = CohereReranker()
        await reranker.initialize({"base_url": registry["http"], "model": "similarity", "api_version": version,
                                   "max_documents_per_request": 3})
        try:
            scores = await reranker.batch_score_pairs(QUERY, DOCS)  # two requests: 3 + 1 documents
            np.testing.assert_allclose(scores, expected_relevance, atol=1e-5)
            assert (await reranker.health_check())["status"] == "healthy"
        finally:
            await reranker.close()


async def test_registered_cohere_providers_serve_and_hide_their_key(registry, reference_model, expected_relevance):
    """Registered at run time, in their own replicas, pointed at this registry's Cohere endpoints;
    the Cohere reranker is then itself served at /v2/rerank (a registry reranking through another)."""
    secret = "co-this-must-never-be-shown-5678"
    config = {"base_url": registry["http"], "api_key": secret}
    await provider_registry.register_provider(ProviderType.EMBEDDING, "cohere-minilm", EMBEDDER,
                                              {**config, "model": "minilm"}, deployment={"num_cpus": 0.1})
    await provider_registry.register_provider(ProviderType.RERANKER, "cohere-similarity", RERANKER,
                                              {**config, "model": "similarity"}, deployment={"num_cpus": 0.1})
    try:
        embedder = await provider_registry.get_provider(ProviderType.EMBEDDING, "cohere-minilm")
        got = await embedder.embed_texts(TEXTS)
        np.testing.assert_allclose(np.stack(got), reference_model.encode(TEXTS, normalize_embeddings=True), atol=1e-5)
        r = httpx.post(registry["http"] + "/v2/rerank", json={"model": "cohere-similarity", "query": QUERY,
                                                              "documents": DOCS}, timeout=60)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        np.testing.assert_allclose([x["relevance_score"] for x in results],
                                   np.sort(expected_relevance)[::-1], atol=1e-5)
        outputs = [
            repr(await provider_registry.list_providers(include_instances=True)),
            repr(await provider_registry.get_stats()),
            repr(await provider_registry.health_check(ProviderType.EMBEDDING, "cohere-minilm")),
            repr(await provider_registry.health_check(ProviderType.RERANKER, "cohere-similarity")),
            httpx.get(registry["http"] + "/v1/providers", timeout=60).text,
        ]
        for text in outputs:
            assert secret not in text
        assert "***" in outputs[0]
    finally:
        await provider_registry.delete_provider(ProviderType.RERANKER, "cohere-similarity")
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "cohere-minilm")
