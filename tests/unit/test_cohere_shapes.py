"""Cohere's shapes on the registry's side (deployments/cohere_shapes.py), without Ray.

Answers are parsed with the official ``cohere`` client's own response types
(the functions its ``Client`` and ``ClientV2`` call on a 2xx body), and
requests that must be refused go through the real HTTP app (`build_http_app`)
over ASGI: they are answered before any provider call, so the core needs
only its settings. The end-to-end runs are in tests/integration/test_cohere.py.
"""

from __future__ import annotations

import base64
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from deployments.cohere_shapes import (
    CohereEmbedRequest,
    CohereEmbedV2Request,
    check_embed,
    check_rerank_documents,
    embed_answer,
    relevance_scores,
)
from deployments.http_api import validate_body
from deployments.http_app import build_http_app
from providers.errors import InvalidRequestError, ProviderCallError

cohere = pytest.importorskip("cohere")
from cohere.core.unchecked_base_model import construct_type  # noqa: E402

MATRIX = np.array([[0.25, -0.5, 1.0], [3.0, 0.0, -1.5]], dtype=np.float32)
TEXTS = ["one two", "three"]


def parsed(type_, body):
    """What the official client makes of a JSON answer (as its raw clients do)."""
    import orjson

    return construct_type(type_=type_, object_=orjson.loads(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)))


def test_v1_plain_answer_is_what_client_embed_parses():
    from cohere.types import EmbeddingsFloatsEmbedResponse, EmbedResponse

    got = parsed(EmbedResponse, embed_answer(1, TEXTS, MATRIX, None))
    assert isinstance(got, EmbeddingsFloatsEmbedResponse)
    np.testing.assert_array_equal(np.array(got.embeddings, dtype=np.float32), MATRIX)
    assert got.texts == TEXTS and got.meta.api_version.version == "1"
    assert got.meta.billed_units.input_tokens == 3


def test_v1_by_type_answer_carries_float_and_base64():
    from cohere.types import EmbeddingsByTypeEmbedResponse, EmbedResponse

    got = parsed(EmbedResponse, embed_answer(1, TEXTS, MATRIX, ["float", "base64"]))
    assert isinstance(got, EmbeddingsByTypeEmbedResponse)
    np.testing.assert_array_equal(np.array(got.embeddings.float_, dtype=np.float32), MATRIX)
    decoded = [np.frombuffer(base64.b64decode(s), dtype="<f4") for s in got.embeddings.base64]
    np.testing.assert_array_equal(np.stack(decoded), MATRIX)


def test_v2_answer_is_what_client_v2_embed_parses():
    from cohere.types import EmbedByTypeResponse

    body = validate_body({"model": "m", "texts": TEXTS, "input_type": "search_document"}, CohereEmbedV2Request)
    texts, types = check_embed(body, 10, 100)
    assert types == ["float"]  # v2 answers by type, float by default
    got = parsed(EmbedByTypeResponse, embed_answer(2, texts, MATRIX, types))
    np.testing.assert_array_equal(np.array(got.embeddings.float_, dtype=np.float32), MATRIX)
    assert got.embeddings.base64 is None and got.meta.api_version.version == "2"


def test_merging_batched_v1_answers_works():
    """cohere.Client.embed splits texts in batches of 96 and merges the answers (cohere.utils)."""
    from cohere.types import EmbedResponse
    from cohere.utils import merge_embed_responses

    for types in (None, ["float"]):
        merged = merge_embed_responses([parsed(EmbedResponse, embed_answer(1, TEXTS, MATRIX, types))] * 2)
        rows = merged.embeddings if types is None else merged.embeddings.float_
        assert len(rows) == 4 and merged.texts == TEXTS * 2


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "m"}, "texts"),
    ({"model": "m", "texts": []}, "texts"),
    ({"model": "m", "texts": "one string"}, "texts"),
    ({"model": "m", "texts": ["a", 5]}, "texts[1]"),
    ({"model": "m", "texts": ["x"] * 11}, "texts"),
    ({"model": "m", "texts": ["x" * 101]}, "texts[0]"),
    ({"model": "m", "texts": ["a"], "images": ["data:image/png;base64,AA=="]}, "images"),
    ({"model": "m", "texts": ["a"], "embedding_types": ["float", "int8"]}, "embedding_types[1]"),
    ({"model": "m", "texts": ["a"], "embedding_types": []}, "embedding_types"),
    ({"model": "m", "texts": ["a"], "truncate": "START"}, "truncate"),
])
def test_embed_refusals_name_the_field(body, field):
    with pytest.raises(InvalidRequestError) as err:
        check_embed(validate_body(body, CohereEmbedRequest), 10, 100)
    assert err.value.field == field


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "m", "texts": ["a"]}, "input_type"),  # required in v2, as Cohere's
    ({"model": "m", "texts": ["a"], "input_type": "image"}, "input_type"),
    ({"model": "m", "texts": ["a"], "input_type": "search_query", "max_tokens": 8}, "max_tokens"),
    ({"model": "m", "texts": ["a"], "input_type": "search_query", "inputs": [{"content": []}]}, "inputs"),
    ({"model": "m", "texts": ["a"], "input_type": "search_query", "colour": "red"}, "colour"),
])
def test_v2_embed_refusals_name_the_field(body, field):
    with pytest.raises(InvalidRequestError) as err:
        check_embed(validate_body(body, CohereEmbedV2Request), 10, 100)
    assert err.value.field == field


def test_rerank_documents_name_the_offending_one():
    assert check_rerank_documents(["a", {"text": "b"}], 10, 100) == ["a", "b"]
    for docs, objects, field in ((["a", "b", "c", 7], True, "documents[3]"), ([{"text": 1}], True, "documents[0].text"),
                                 ([{"text": "b"}], False, "documents[0]"), ([], True, "documents"),
                                 (["a"] * 11, True, "documents")):
        with pytest.raises(InvalidRequestError) as err:
            check_rerank_documents(docs, 10, 100, objects)
        assert err.value.field == field


def test_cosines_map_into_the_unit_interval_in_order():
    cosines = [1.0 + 2e-16, 0.8, 0.0, -0.3, -1.0]
    mapped = relevance_scores(cosines, "embedding_similarity", "similarity")
    assert mapped == [1.0, 0.9, 0.5, 0.35, 0.0]
    assert mapped == sorted(mapped, reverse=True) and all(0.0 <= s <= 1.0 for s in mapped)


def test_scores_already_in_the_unit_interval_are_kept():
    assert relevance_scores([0.97, 0.5, 0.0], "cross_encoder", "ce") == [0.97, 0.5, 0.0]


@pytest.mark.parametrize("score", [-0.2, 3.7, float("nan")])
def test_a_score_outside_the_unit_interval_is_the_rerankers_error(score):
    with pytest.raises(ProviderCallError, match=r"reranker 'ce' \(cross_encoder\).*config.normalization"):
        relevance_scores([0.5, score], "cross_encoder", "ce")


# -- over the real HTTP app: refusals answered before any provider is called ---------------------

def _client():
    settings = SimpleNamespace(max_request_bytes=1 << 20, max_texts_per_request=4, max_chars_per_text=50,
                               http_host="127.0.0.1")
    app = build_http_app(SimpleNamespace(settings=settings), observability=None, lifecycle=None, rollout=None,
                         vectors=None)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry")


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/embed", {"texts": ["a"]}, "model"),
    ("/v1/embed", {"model": "m", "texts": ["a", None]}, "texts[1]"),
    ("/v2/embed", {"model": "m", "texts": ["a"]}, "input_type"),
    ("/v2/embed", {"model": "m", "texts": ["a"], "input_type": "search_query", "embedding_types": ["ubinary"]},
     "embedding_types[0]"),
    ("/v1/rerank", {"model": "m", "query": "q", "documents": ["a", "b", "c", 7]}, "documents[3]"),
    ("/v2/rerank", {"model": "m", "query": "q", "documents": ["a", {"text": "b"}]}, "documents[1]"),
    ("/v2/rerank", {"model": "m", "query": "q", "documents": ["a"] * 5}, "documents"),
    ("/v2/rerank", {"model": "m", "query": "q", "documents": ["a"], "return_documents": True}, "return_documents"),
    ("/v2/rerank", {"model": "m", "documents": ["a"]}, "query"),
])
async def test_refusals_over_http_keep_the_registry_shape(path, body, field):
    async with _client() as client:
        response = await client.post(path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and error["type"] == "invalid_request_error"
    assert error["message"].startswith(field + ":")


async def test_malformed_json_is_a_400_naming_body():
    async with _client() as client:
        response = await client.post("/v2/embed", content=b"{not json")
    assert response.status_code == 400 and response.json()["error"]["param"] == "body"
