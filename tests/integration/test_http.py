"""The HTTP API on real Ray Serve with the real MiniLM model."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_openai_client_gets_the_models_own_embeddings(registry, reference_model):
    import openai

    client = openai.OpenAI(base_url=registry["http"] + "/v1", api_key="unused", max_retries=0)
    texts = ["hello", "The cat sits on the mat.", "Ray Serve routes requests"]
    expected = reference_model.encode(texts, normalize_embeddings=True)
    for fmt in (openai.NOT_GIVEN, "float", "base64"):  # the client defaults to base64
        resp = client.embeddings.create(model="minilm", input=texts, encoding_format=fmt)
        # With encoding_format="base64" given explicitly the client hands back the
        # raw string; left unset, it asks for base64 itself and decodes it.
        got = np.array([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") if isinstance(d.embedding, str)
                        else d.embedding for d in resp.data], dtype=np.float32)
        assert got.shape == (3, 384)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert [d.index for d in resp.data] == [0, 1, 2]
        assert resp.model == "minilm"


def test_curl_shaped_request_without_content_type(registry):
    # curl -d sends application/x-www-form-urlencoded; the README's example must still work.
    r = httpx.post(registry["http"] + "/v1/embeddings", content='{"model":"minilm","input":["hello"]}', timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and len(body["data"][0]["embedding"]) == 384
    assert body["usage"]["prompt_tokens"] == 1


def test_single_string_input(registry):
    r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "minilm", "input": "one string"}, timeout=60)
    assert r.status_code == 200 and len(r.json()["data"]) == 1


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"model": "minilm", "input": []}, 400, "input"),
        ({"model": "minilm", "input": [1, "a"]}, 400, "input[0]"),
        ({"model": "minilm", "input": [1, 2]}, 400, "input"),
        ({"model": "minilm", "input": ["a", {"b": 1}]}, 400, "input[1]"),
        ({"model": "minilm", "input": ["x"] * 129}, 400, "input"),
        ({"model": "minilm", "input": ["x" * 5001]}, 400, "input[0]"),
        ({"model": "minilm"}, 400, "input"),
        ({"input": ["a"]}, 400, "model"),
        ({"model": 5, "input": ["a"]}, 400, "model"),
        ({"model": "minilm", "input": ["a"], "encoding_format": "hex"}, 400, "encoding_format"),
        ({"model": "minilm", "input": ["a"], "colour": "red"}, 400, "colour"),
        ({"model": "minilm", "input": ["a"], "dimensions": 12}, 400, "dimensions"),
        ({"model": "no-such-model", "input": ["a"]}, 404, "model"),
        ([1, 2], 400, "body"),
        ("not json", 400, "body"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(registry, body, status, field):
    url = registry["http"] + "/v1/embeddings"
    r = httpx.post(url, content=body, timeout=60) if isinstance(body, str) else httpx.post(url, json=body, timeout=60)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    if field:
        assert error["param"] == field
        assert field.split("[")[0] in error["message"]
    if status == 404:
        assert "minilm" in error["message"]  # lists the known names


def test_limits_name_the_limit(registry):
    r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "minilm", "input": ["x"] * 129}, timeout=60)
    assert "128" in r.json()["error"]["message"] and "max_texts_per_request" in r.json()["error"]["message"]


def test_read_endpoints(registry):
    base = registry["http"]
    providers = httpx.get(base + "/v1/providers", timeout=60).json()
    assert {"minilm", "hash"} <= set(providers["embeddings"])
    assert set(providers) == {"embeddings", "vector_stores", "graph_engines", "graph_managers",
                              "graph_clients", "rerankers", "cache", "tools"}
    health = httpx.get(base + "/v1/providers/embeddings/minilm/health", timeout=60)
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    assert httpx.get(base + "/v1/providers/embeddings/nope/health", timeout=60).status_code == 404
    assert httpx.get(base + "/v1/providers/widgets/minilm/health", timeout=60).status_code == 404
    stats = httpx.get(base + "/v1/stats", timeout=60).json()
    assert stats["provider_counts"]["embeddings"] >= 2
    assert httpx.get(base + "/healthz", timeout=60).json()["status"] == "ok"
    models = httpx.get(base + "/v1/models", timeout=60).json()
    assert "minilm" in [m["id"] for m in models["data"]]


def test_sts_benchmark_through_http_matches_the_published_score(registry):
    """Spearman x100 of cosine vs gold on STS-B test: 82.03 in process; the served path must match."""
    import csv

    from scipy.stats import spearmanr

    from tests.integration.conftest import STS_PATH

    rows = []
    with open(STS_PATH, encoding="utf-8") as fh:
        for cols in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(cols) >= 7:
                rows.append((float(cols[4]), cols[5], cols[6]))
    assert len(rows) == 1379
    sentences = [s for _, a, b in rows for s in (a, b)]
    vectors = []
    with httpx.Client(timeout=120) as client:
        for i in range(0, len(sentences), 128):
            r = client.post(registry["http"] + "/v1/embeddings",
                            json={"model": "minilm", "input": sentences[i:i + 128], "encoding_format": "base64"})
            assert r.status_code == 200, r.text
            vectors += [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in r.json()["data"]]
    m = np.array(vectors)
    a, b = m[0::2], m[1::2]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    score = spearmanr(cos, [g for g, _, _ in rows]).correlation * 100
    assert abs(score - 82.03) < 0.05, score


async def test_concurrent_requests_are_merged_and_each_gets_its_own_vector(registry, reference_model):
    """64 concurrent one-text requests: fewer provider calls than requests, every answer exact."""
    texts = [f"sentence number {i} about a topic {i * 7 % 13}" for i in range(64)]
    expected = reference_model.encode(texts, normalize_embeddings=True)
    before = httpx.get(registry["http"] + "/v1/stats", timeout=60).json()["coalescing"]
    async with httpx.AsyncClient(timeout=60) as client:
        import asyncio

        responses = await asyncio.gather(*(
            client.post(registry["http"] + "/v1/embeddings", json={"model": "minilm", "input": [t]})
            for t in texts))
    got = np.array([r.json()["data"][0]["embedding"] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    after = httpx.get(registry["http"] + "/v1/stats", timeout=60).json()["coalescing"]
    provider_calls = after["provider_calls"] - before["provider_calls"]
    caller_calls = after["caller_calls"] - before["caller_calls"]
    assert caller_calls == 64
    assert provider_calls < caller_calls, (provider_calls, caller_calls)
