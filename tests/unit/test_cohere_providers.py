"""The Cohere embedder and reranker (providers/embeddings/cohere.py, providers/rerankers/cohere.py).

Their request builders and answer decoders are checked here directly, and
their failures against real sockets (a closed port, a listener that never
answers). Their end-to-end runs, against this registry's own Cohere-shaped
endpoints, are in tests/integration/test_cohere.py.
"""

from __future__ import annotations

import base64
import socket

import numpy as np
import pytest

from providers._cohere import CohereHTTP
from providers.config_base import parse_provider_config
from providers.embeddings.cohere import CohereEmbedConfig, CohereEmbedder, decode_embeddings, embed_request
from providers.errors import ConfigError, ProviderCallError, ProviderTimeoutError
from providers.net import free_port
from providers.registry.loading import validate_provider_class
from providers.rerankers.cohere import CohereRerankConfig, CohereReranker, decode_scores, rerank_request
from providers.types import ProviderType

SECRET = "co-key-" + "9d41c7e2b05a"


def test_both_satisfy_their_interfaces():
    validate_provider_class(CohereEmbedder, ProviderType.EMBEDDING)
    validate_provider_class(CohereReranker, ProviderType.RERANKER)


@pytest.mark.parametrize(("model", "raw", "key"), [
    (CohereEmbedConfig, {"model": "m", "colour": "red"}, "config.colour"),
    (CohereEmbedConfig, {}, "config.model"),
    (CohereEmbedConfig, {"model": "m", "api_version": "v3"}, "config.api_version"),
    (CohereEmbedConfig, {"model": "m", "base_url": "api.cohere.com"}, "config.base_url"),
    (CohereRerankConfig, {"model": "m", "timeout_s": 0}, "config.timeout_s"),
    (CohereRerankConfig, {"model": "m", "max_documents_per_request": 0}, "config.max_documents_per_request"),
])
def test_config_errors_name_the_key(model, raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_provider_config(model, raw)


def test_the_key_is_in_no_repr():
    s = parse_provider_config(CohereEmbedConfig, {"model": "m", "api_key": SECRET})
    http = CohereHTTP("Cohere embedder", s)
    assert http.client.headers["authorization"] == f"Bearer {SECRET}"  # where it belongs
    for text in (repr(s), str(s), repr(http), repr(http.client.headers), s.model_dump_json()):
        assert SECRET not in text
    assert http.scrub(f"echoed: Bearer {SECRET}") == "echoed: Bearer ***"


def test_documents_and_queries_carry_their_input_type():
    s = parse_provider_config(CohereEmbedConfig, {"model": "embed-v4.0"})
    assert embed_request(s, ["a"], s.document_input_type) == {
        "model": "embed-v4.0", "texts": ["a"], "input_type": "search_document", "embedding_types": ["float"]}
    s = parse_provider_config(CohereEmbedConfig, {"model": "m", "embedding_type": "base64", "truncate": "END"})
    body = embed_request(s, ["q"], s.query_input_type)
    assert body["input_type"] == "search_query" and body["embedding_types"] == ["base64"]
    assert body["truncate"] == "END"


def test_embeddings_decode_from_every_answer_shape():
    rows = [[0.5, -1.0], [2.0, 0.25]]
    b64 = [base64.b64encode(np.asarray(r, dtype="<f4").tobytes()).decode() for r in rows]
    for body, kind in (({"embeddings": rows}, "float"), ({"embeddings": {"float": rows}}, "float"),
                       ({"embeddings": {"base64": b64, "float": rows}}, "base64")):
        got = decode_embeddings(body, 2, kind)
        np.testing.assert_array_equal(np.stack(got), np.asarray(rows, dtype=np.float32))
        assert got[0].dtype == np.float32


@pytest.mark.parametrize(("body", "why"), [
    ({}, "KeyError"),
    ({"embeddings": {"int8": [[1, 2]]}}, "KeyError"),
    ({"embeddings": [[1.0, 2.0]]}, "1 vectors for 2 texts"),
    ({"embeddings": [[1.0, 2.0], [1.0]]}, "different lengths"),
    ({"embeddings": [[1.0, 2.0], []]}, "non-empty"),
    ({"embeddings": [[1.0, 2.0], [1.0, float("nan")]]}, "NaN"),
    ({"embeddings": [[1.0, 2.0], 7]}, "list or a base64 string"),
    ({"embeddings": "not a list"}, "TypeError"),
])
def test_a_malformed_embed_answer_is_a_provider_failure(body, why):
    with pytest.raises(ProviderCallError, match="Cohere embedder: malformed response") as err:
        decode_embeddings(body, 2)
    assert why in str(err.value)


def test_rerank_asks_for_every_score_and_reads_them_in_input_order():
    assert rerank_request("r", "q", ["a", "b", "c"]) == {"model": "r", "query": "q", "documents": ["a", "b", "c"],
                                                         "top_n": 3}
    body = {"results": [{"index": 2, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.4},
                        {"index": 1, "relevance_score": 0.1, "document": {"text": "b"}}]}
    assert decode_scores(body, 3) == [0.4, 0.1, 0.9]


@pytest.mark.parametrize(("results", "why"), [
    ([{"index": 0, "relevance_score": 0.5}], "1 results for 2 documents"),
    ([{"index": 0, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.2}], "appears twice"),
    ([{"index": 0, "relevance_score": 0.5}, {"index": 2, "relevance_score": 0.2}], "index 2 is not one of 0..1"),
    ([{"index": 0, "relevance_score": 0.5}, {"index": True, "relevance_score": 0.2}], "index True"),
    ([{"index": 0, "relevance_score": 0.5}, {"index": 1, "relevance_score": float("nan")}], "not a finite number"),
    ([{"index": 0, "relevance_score": 0.5}, {"index": 1}], "KeyError"),
    ("nope", "results must be a list"),
])
def test_a_malformed_rerank_answer_is_a_provider_failure(results, why):
    with pytest.raises(ProviderCallError, match="Cohere reranker: malformed response") as err:
        decode_scores({"results": results}, 2)
    assert why in str(err.value)


async def test_calls_before_initialize_name_the_provider():
    with pytest.raises(ProviderCallError, match="Cohere embedder is not initialized"):
        await CohereEmbedder().embed_query("q")
    with pytest.raises(ProviderCallError, match="Cohere reranker is not initialized"):
        await CohereReranker().batch_score_pairs("q", ["d"])
    assert (await CohereReranker().health_check())["status"] == "unhealthy"


async def test_an_unreachable_server_fails_start_naming_provider_and_server():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ProviderCallError) as err:
        await CohereEmbedder().initialize({"base_url": url, "model": "m", "api_key": SECRET})
    assert f"Cohere embedder ({url}, v2/embed) unreachable: ConnectError" == str(err.value)
    reranker = CohereReranker()
    await reranker.initialize({"base_url": url, "model": "m", "api_key": SECRET, "api_version": "v1"})
    report = await reranker.health_check()
    assert report["status"] == "unhealthy" and "v1/rerank) unreachable" in report["last_error"]
    assert SECRET not in repr(report) and SECRET not in repr(reranker)
    await reranker.close()


async def test_a_server_that_never_answers_is_a_timeout():
    with socket.socket() as listener:  # accepts connections (the backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        reranker = CohereReranker()
        await reranker.initialize({"base_url": f"http://127.0.0.1:{listener.getsockname()[1]}", "model": "m",
                                   "timeout_s": 0.2})
        with pytest.raises(ProviderTimeoutError, match=r"timed out after 0.2 s \(config.timeout_s\)"):
            await reranker.batch_score_pairs("q", ["d"])
        await reranker.close()
