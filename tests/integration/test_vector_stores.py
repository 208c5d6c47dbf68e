"""Vector stores through the registry on real Ray Serve: HTTP, the seed's
Python API, the embedding-space guard and re-embedding, on the embedded
PostgreSQL + pgvector filled by the real MiniLM model."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import numpy as np
import pytest

from providers.errors import ConfigError, EmbeddingSpaceMismatchError, InvalidRequestError
from providers.interfaces.vector_stores import VectorDocument, VectorStore
from serve_app import ProviderType, provider_registry
from tests.integration.conftest import ADMIN_TOKEN, ADMIN_TOKEN_ENV, PGVECTOR, ROOT, SAMPLE

pytestmark = pytest.mark.integration

FACTS = {
    "paris": "Paris is the capital of France.",
    "whale": "The blue whale is the largest animal on Earth.",
    "python": "Python is a popular programming language.",
    "tea": "Green tea is brewed from unoxidized leaves.",
}


def post(registry, path, body):
    return httpx.post(registry["http"] + path, json=body, timeout=60)


def test_text_in_text_out_over_http(registry, reference_model):
    docs = [{"id": k, "content": v, "metadata": {"kind": "fact", "n": i}} for i, (k, v) in enumerate(FACTS.items())]
    r = post(registry, "/v1/vector_stores/memories/documents", {"documents": docs})
    assert r.status_code == 200, r.text
    assert r.json()["ids"] == list(FACTS) and r.json()["embedded"] == 4

    r = post(registry, "/v1/vector_stores/memories/search", {"text": "What is the biggest mammal?", "top_k": 2})
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    assert hits[0]["id"] == "whale" and hits[0]["content"] == FACTS["whale"]

    # the stored vector is the model's own embedding of the content
    r = httpx.get(registry["http"] + "/v1/vector_stores/memories/documents/paris?include_embedding=true", timeout=60)
    assert r.status_code == 200
    expected = reference_model.encode([FACTS["paris"]], normalize_embeddings=True)[0]
    np.testing.assert_allclose(np.array(r.json()["embedding"]), expected, atol=1e-5)

    # filters, hybrid, and search by vector
    r = post(registry, "/v1/vector_stores/memories/search",
             {"text": "capital city", "filters": {"n": {"$gte": 2}}, "top_k": 4})
    assert {h["id"] for h in r.json()["results"]} <= {"python", "tea"}
    r = post(registry, "/v1/vector_stores/memories/search",
             {"text": "unoxidized leaves", "hybrid": True, "vector_weight": 0.2, "top_k": 1})
    assert r.json()["results"][0]["id"] == "tea"
    r = post(registry, "/v1/vector_stores/memories/search", {"embedding": expected.tolist(), "top_k": 1})
    assert r.json()["results"][0]["id"] == "paris" and r.json()["results"][0]["score"] == pytest.approx(1, abs=1e-4)

    stats = httpx.get(registry["http"] + "/v1/vector_stores/memories/stats", timeout=60).json()
    assert stats["count"] >= 4 and stats["embedder"] == "minilm" and stats["space_mismatch"] is False
    assert stats["embedding_space"]["dimension"] == 384

    r = httpx.delete(registry["http"] + "/v1/vector_stores/memories/documents/tea", timeout=60)
    assert r.status_code == 200 and r.json()["deleted"] is True
    r = httpx.get(registry["http"] + "/v1/vector_stores/memories/documents/tea", timeout=60)
    assert r.status_code == 404 and r.json()["error"]["param"] == "id"
    assert httpx.delete(registry["http"] + "/v1/vector_stores/memories/documents/tea", timeout=60).status_code == 404


@pytest.mark.parametrize("path, body, status, field", [
    ("documents", {"documents": [{"id": "x", "content": "a", "embedding": [0.1] * 12}]}, 400, "documents[0].embedding"),
    ("documents", {"documents": []}, 400, "documents"),
    ("documents", {"documents": [{"id": "", "content": "a"}]}, 400, "documents.0.id"),
    ("documents", {"documents": [{"content": "a", "colour": 1}]}, 400, "documents.0.colour"),
    ("documents", {"documents": [{"content": "x" * 5001}]}, 400, "documents[0].content"),
    ("documents", {"docs": []}, 400, "documents"),
    ("search", {}, 400, "text"),
    ("search", {"text": "a", "top_k": 0}, 400, "top_k"),
    ("search", {"text": "a", "top_k": 100000}, 400, "top_k"),
    ("search", {"text": "a", "filters": {"n": {"$regex": "x"}}}, 400, "filters.n.$regex"),
    ("search", {"text": "a", "filters": {"$where": "1"}}, 400, "filters.$where"),
    ("search", {"embedding": [1.0, 2.0]}, 400, "query_embedding"),
    ("search", {"embedding": [0.1] * 384, "hybrid": True}, 400, "text"),
    ("search", {"text": "a", "vector_weight": 2}, 400, "vector_weight"),
])
def test_bad_input_is_a_4xx_naming_the_field(registry, path, body, status, field):
    r = post(registry, f"/v1/vector_stores/memories/{path}", body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == field, r.json()


def test_ids_with_slashes_and_unicode_round_trip_over_http(registry):
    """Path ids are matched whole: a '/' (sent as %2F) is part of the id, not a route."""
    from urllib.parse import quote

    base = registry["http"] + "/v1/vector_stores/memories/documents"
    for doc_id in ("notes/2024/paris", "ü ✓ id"):
        r = httpx.post(base, json={"documents": [{"id": doc_id, "content": "a path-like id"}]}, timeout=60)
        assert r.status_code == 200, r.text
        url = f"{base}/{quote(doc_id, safe='')}"
        assert httpx.get(url, timeout=60).json()["id"] == doc_id
        assert httpx.delete(url, timeout=60).status_code == 200
        assert httpx.get(url, timeout=60).status_code == 404


def test_unknown_store_is_404(registry):
    r = post(registry, "/v1/vector_stores/nope/search", {"text": "a"})
    assert r.status_code == 404 and "memories" in r.json()["error"]["message"]
    assert httpx.get(registry["http"] + "/v1/vector_stores/nope/stats", timeout=60).status_code == 404


async def test_seed_api_proxy_is_a_vector_store(registry):
    store = await provider_registry.get_provider(ProviderType.VECTOR_STORE, "memories")
    assert isinstance(store, VectorStore)
    embedder = await provider_registry.get_provider(ProviderType.EMBEDDING, "minilm")
    texts = ["Mount Everest is the highest mountain.", "The Nile is a long river."]
    vectors = await embedder.embed_texts(texts)
    ids = await store.store_documents([VectorDocument(id=f"geo{i}", content=t, embedding=v, metadata={"geo": True})
                                       for i, (t, v) in enumerate(zip(texts, vectors))])
    assert ids == ["geo0", "geo1"]
    hits = await store.search_similar(await embedder.embed_query("tallest peak"), top_k=1, filters={"geo": True})
    assert hits[0].id == "geo0"
    assert await store.count_documents({"geo": True}) == 2
    with pytest.raises(InvalidRequestError) as err:
        await store.store_documents([VectorDocument(id="bad", content="x", embedding=np.full(384, np.nan))])
    assert err.value.field == "documents[0].embedding"


async def _register_embedder(name: str, label: str) -> None:
    await provider_registry.register_provider(
        ProviderType.EMBEDDING, name, f"{SAMPLE}.HashEmbedder", {"label": label, "dimension": 384},
        deployment={"num_cpus": 0.1})


async def _register_store(name: str, embedder: str, pg_data_dir: str) -> None:
    await provider_registry.register_provider(
        ProviderType.VECTOR_STORE, name, PGVECTOR, {"data_dir": pg_data_dir, "table_name": name, "dimension": 384},
        deployment={"num_cpus": 0.1}, embedder=embedder)


async def test_guard_refuses_another_model_and_reembed_moves_the_store(registry, pg_data_dir):
    await _register_embedder("space-a", "model-a")
    await _register_store("guarded", "space-a", pg_data_dir)
    docs = [{"id": f"g{i:03d}", "content": f"note number {i}", "metadata": {"i": i}} for i in range(30)]
    assert post(registry, "/v1/vector_stores/guarded/documents", {"documents": docs}).status_code == 200
    store = await provider_registry.get_provider(ProviderType.VECTOR_STORE, "guarded")

    # Hot-swap the embedder to another model: the store must refuse to mix.
    await provider_registry.swap_provider(ProviderType.EMBEDDING, "space-a", config={"label": "model-b",
                                                                                      "dimension": 384})
    r = post(registry, "/v1/vector_stores/guarded/search", {"text": "note number 3"})
    assert r.status_code == 409, r.text
    message = r.json()["error"]["message"]
    assert "model-a" in message and "model-b" in message and "reembed" in message
    r = post(registry, "/v1/vector_stores/guarded/documents", {"documents": [{"content": "new"}]})
    assert r.status_code == 409
    with pytest.raises(EmbeddingSpaceMismatchError):
        await store.search_similar(np.ones(384, dtype=np.float32))
    assert (await store.get_document("g001")).content == "note number 1"  # reads are not guarded

    # A write landing mid re-embed (after the copy began) and a delete must both be carried over.
    first = await provider_registry._ask("reembed_step", "guarded", None, None, 10)
    assert first["phase"] == "copy" and first["copied"] == 10 and first["total"] == 30
    await provider_registry.swap_provider(ProviderType.EMBEDDING, "space-a", config={"label": "model-a",
                                                                                      "dimension": 384})
    # (back on model-a for a moment: the old store takes writes again)
    assert post(registry, "/v1/vector_stores/guarded/documents",
                {"documents": [{"id": "late", "content": "written during the re-embed"}]}).status_code == 200
    assert httpx.delete(registry["http"] + "/v1/vector_stores/guarded/documents/g002", timeout=60).status_code == 200
    await provider_registry.swap_provider(ProviderType.EMBEDDING, "space-a", config={"label": "model-b",
                                                                                      "dimension": 384})
    # the staging store was started for model-b before the interruption; resume
    # step by step until the store is frozen for the last copy: changes wait
    state = first
    while state["phase"] != "final":
        state = await provider_registry._ask("reembed_step", "guarded", None, None, 10)
        assert state["phase"] != "done"
    r = post(registry, "/v1/vector_stores/guarded/documents", {"documents": [{"id": "x", "content": "frozen"}]})
    assert r.status_code == 409 and "retry" in r.json()["error"]["message"]
    assert httpx.delete(registry["http"] + "/v1/vector_stores/guarded/documents/g005", timeout=60).status_code == 409
    state = await provider_registry.reembed("guarded", batch_size=10, progress=False)
    assert state["done"] is True and state["space"]["model"] == "model-b"
    assert state["pruned"] == 1
    r = post(registry, "/v1/vector_stores/guarded/documents", {"documents": [{"id": "after", "content": "thawed"}]})
    assert r.status_code == 200, r.text
    await store.delete_document("after")

    r = post(registry, "/v1/vector_stores/guarded/search", {"text": "note number 3", "top_k": 1})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["id"] == "g003"  # hash embeddings: the exact text is its own nearest
    ids = {d.id for d in await store.list_documents(limit=100)}
    assert "late" in ids and "g002" not in ids and len(ids) == 30
    stats = httpx.get(registry["http"] + "/v1/vector_stores/guarded/stats", timeout=60).json()
    assert stats["embedding_space"]["model"] == "model-b" and stats["collection"].startswith("public.guarded_r")
    names = (await provider_registry.list_providers(ProviderType.VECTOR_STORE))
    assert "guarded.reembed" not in str(names)


async def test_text_never_falls_back_to_an_embedder_of_another_model(registry, pg_data_dir):
    await _register_embedder("primary-x", "model-x")
    await _register_store("fenced", "primary-x", pg_data_dir)
    assert post(registry, "/v1/vector_stores/fenced/documents",
                {"documents": [{"id": "a", "content": "alpha"}]}).status_code == 200
    await provider_registry.set_fallback_provider(ProviderType.EMBEDDING, "primary-x", "hash")  # another model
    await provider_registry.swap_provider(ProviderType.EMBEDDING, "primary-x",
                                          config={"label": "model-x", "dimension": 384, "fail": True})
    r = post(registry, "/v1/vector_stores/fenced/search", {"text": "alpha"})
    assert r.status_code == 502, r.text  # not served by 'hash', whose vectors mean something else
    assert "fails on purpose" in r.json()["error"]["message"]
    # the plain embeddings endpoint still falls back, as configured
    r = post(registry, "/v1/embeddings", {"model": "primary-x", "input": ["alpha"]})
    assert r.status_code == 200


async def test_reembed_over_the_cli(registry, pg_data_dir):
    await _register_embedder("space-c", "model-c")
    await _register_store("clistore", "space-c", pg_data_dir)
    docs = [{"id": f"c{i}", "content": f"line {i}"} for i in range(12)]
    assert post(registry, "/v1/vector_stores/clistore/documents", {"documents": docs}).status_code == 200
    await _register_embedder("space-d", "model-d")
    env = {**os.environ, ADMIN_TOKEN_ENV: ADMIN_TOKEN, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "serve_app", "reembed", "clistore", "--embedder", "space-d",
                        "--batch-size", "5", "--url", registry["http"], "--token-env", ADMIN_TOKEN_ENV],
                       capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "re-embed clistore" in r.stderr  # the progress bar
    assert '"done": true' in r.stdout
    stats = httpx.get(registry["http"] + "/v1/vector_stores/clistore/stats", timeout=60).json()
    assert stats["embedder"] == "space-d" and stats["embedding_space"]["model"] == "model-d"
    assert stats["count"] == 12
    assert ADMIN_TOKEN not in r.stdout + r.stderr


async def test_reembed_can_be_aborted_while_frozen(registry, pg_data_dir):
    await _register_embedder("space-e", "model-e")
    await _register_embedder("space-f", "model-f")
    await _register_store("abortable", "space-e", pg_data_dir)
    assert post(registry, "/v1/vector_stores/abortable/documents",
                {"documents": [{"id": "a", "content": "alpha"}]}).status_code == 200
    state = {"phase": ""}
    while state["phase"] != "final":
        state = await provider_registry._ask("reembed_step", "abortable", "space-f", None, 100)
    body = {"documents": [{"id": "b", "content": "beta"}]}
    assert post(registry, "/v1/vector_stores/abortable/documents", body).status_code == 409
    result = await provider_registry.abort_reembed("abortable")
    assert result["staging_deleted"] is True
    r = post(registry, "/v1/vector_stores/abortable/documents", body)
    assert r.status_code == 200, r.text
    stats = httpx.get(registry["http"] + "/v1/vector_stores/abortable/stats", timeout=60).json()
    assert stats["embedder"] == "space-e" and stats["count"] == 2


async def test_store_needs_a_known_embedder(registry, pg_data_dir):
    with pytest.raises(ConfigError, match="embedder"):
        await provider_registry.register_provider(
            ProviderType.VECTOR_STORE, "orphan", PGVECTOR, {"data_dir": pg_data_dir, "dimension": 384},
            embedder="no-such-embedder")
    with pytest.raises(ConfigError, match="dependency"):
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "minilm")  # 'memories' uses it
