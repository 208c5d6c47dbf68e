"""The memory pipeline end to end on the embedded defaults (real MiniLM, real
PostgreSQL + pgvector, the embedding-similarity reranker), through HTTP and
the seed's Python API."""

from __future__ import annotations

import csv

import httpx
import pytest

from providers.interfaces.tools import Tool
from serve_app import ProviderType, provider_registry
from tests.integration.conftest import STS_PATH

pytestmark = pytest.mark.integration


def paraphrase_pairs(n: int) -> list[tuple[str, str]]:
    """STS test pairs rated 4.0 or more (near paraphrases), first sentence unique."""
    pairs, seen = [], set()
    with open(STS_PATH, encoding="utf-8") as fh:
        for cols in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            score, a, b = float(cols[4]), cols[5], cols[6]
            if score >= 4.0 and a not in seen and a != b:
                seen.add(a)
                pairs.append((a, b))
    return pairs[:n]


def tool(registry, name, arguments):
    return httpx.post(f"{registry['http']}/v1/tools/{name}", json=arguments, timeout=120)


def test_store_200_memories_and_find_them_by_paraphrase(registry):
    pairs = paraphrase_pairs(200)
    assert len(pairs) == 200
    for start in range(0, 200, 50):
        batch = [{"id": f"sts{i}", "content": a, "metadata": {"i": i}}
                 for i, (a, _) in enumerate(pairs[start:start + 50], start=start)]
        r = tool(registry, "memory.store", {"memories": batch, "source": "sts-test"})
        assert r.status_code == 200, r.text
        assert r.json()["result"]["stored"] == 50
    found = 0
    for i, (_, paraphrase) in enumerate(pairs):
        r = tool(registry, "memory.search", {"query": paraphrase, "top_k": 3})
        assert r.status_code == 200, r.text
        result = r.json()["result"]
        assert result["reranked"] is True and len(result["results"]) == 3
        found += f"sts{i}" in [h["id"] for h in result["results"]]
    rate = found / len(pairs)
    print(f"paraphrase found in the top 3: {found}/{len(pairs)} = {rate:.3f}")
    assert rate >= 0.9  # measured 197/200 = 0.985 with all-MiniLM-L6-v2 and the similarity reranker
    best = tool(registry, "memory.search", {"query": pairs[0][1], "top_k": 1}).json()["result"]["results"][0]
    assert best["provenance"] == {"vector_store": "journal", "source": "sts-test", "reranker": "similarity"}
    assert {"score", "vector_score", "rerank_score", "content", "metadata"} <= set(best)


def test_tools_are_listed_with_their_schemas(registry):
    r = httpx.get(registry["http"] + "/v1/tools", timeout=60)
    assert r.status_code == 200
    tools = {t["name"]: t for t in r.json()["tools"]}
    assert {"memory.store", "memory.search"} <= set(tools)
    assert tools["memory.search"]["input_schema"]["required"] == ["query"]
    assert tools["memory.search"]["description"]


@pytest.mark.parametrize("name, arguments, field", [
    ("memory.search", {}, "query"),
    ("memory.search", {"query": ""}, "query"),
    ("memory.search", {"query": "x", "top_k": 0}, "top_k"),
    ("memory.search", {"query": "x", "top_k": "3"}, "top_k"),
    ("memory.search", {"query": "x", "colour": "red"}, "colour"),
    ("memory.store", {"memories": []}, "memories"),
    ("memory.store", {"memories": [{"content": "a", "extra": 1}]}, "memories[0].extra"),
    ("memory.store", {"memories": [{"content": 5}]}, "memories[0].content"),
    ("memory.store", {"memories": [{"content": "a"}], "entities": [{"entity_type": "Person"}]},
     "entities[0].name"),
])
def test_bad_arguments_are_a_4xx_naming_the_path(registry, name, arguments, field):
    r = tool(registry, name, arguments)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == f"arguments.{field}" or r.json()["error"]["param"] == field, r.json()


def test_unknown_tool_and_non_object_body(registry):
    r = tool(registry, "memory.nope", {"query": "x"})
    assert r.status_code == 404 and "memory.search" in r.json()["error"]["message"]
    r = httpx.post(f"{registry['http']}/v1/tools/memory.search", content=b"[1, 2]", timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "body"


async def test_tool_through_the_seed_api(registry):
    search = await provider_registry.get_provider(ProviderType.TOOL, "memory.search")
    assert isinstance(search, Tool)
    assert search.get_name() == "memory.search"
    store = await provider_registry.get_provider(ProviderType.TOOL, "memory.store")
    await store.invoke({"memories": [{"id": "api1", "content": "The lighthouse keeper feeds three cats."}]})
    result = await search.invoke({"query": "Who looks after the cats at the lighthouse?", "top_k": 1})
    assert result["results"][0]["id"] == "api1"
    from providers.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError) as err:
        await search.invoke({"query": 7})
    assert err.value.field == "arguments.query"


def test_rerank_endpoint_follows_cohere(registry):
    docs = ["Carson City is the capital of Nevada.", "Washington, D.C. is the capital of the United States.",
            "Capital punishment has existed in the United States since before it was a country."]
    r = httpx.post(registry["http"] + "/v1/rerank",
                   json={"model": "similarity", "query": "What is the capital of the United States?",
                         "documents": docs, "top_n": 2, "return_documents": True}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["index"] for x in body["results"]][0] == 1
    assert len(body["results"]) == 2 and body["results"][0]["document"]["text"] == docs[1]
    scores = [x["relevance_score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True)
    r = httpx.post(registry["http"] + "/v1/rerank", json={"model": "similarity", "query": "q", "documents": []}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "documents"


def test_repeated_texts_hit_the_embedding_cache(registry):
    before = httpx.get(registry["http"] + "/v1/stats", timeout=60).json()["embedding_cache"]
    text = "A sentence embedded twice should cost one model call."
    for _ in range(3):
        r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "minilm", "input": [text]}, timeout=60)
        assert r.status_code == 200
    after = httpx.get(registry["http"] + "/v1/stats", timeout=60).json()["embedding_cache"]
    assert after["hits"] - before["hits"] >= 2
    assert after["hit_ratio"] is not None


async def test_cache_provider_through_the_seed_api(registry):
    cache = await provider_registry.get_provider(ProviderType.CACHE, "lru")
    await cache.set("notes:a", {"n": 1}, ttl=60)
    assert await cache.get("notes:a") == {"n": 1}
    assert await cache.get_many(["notes:a", "notes:b"]) == {"notes:a": {"n": 1}}
    assert await cache.clear("notes") == 1
    stats = await cache.get_stats()
    assert stats["hits"] >= 2 and stats["misses"] >= 1
