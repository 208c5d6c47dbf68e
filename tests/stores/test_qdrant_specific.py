"""What is particular to the Qdrant store, against real Qdrant local mode (no mocks).

The behaviour every store shares is in test_vector_store_behaviour.py; here:
the id mapping, the filter compiler against ``filters.matches()`` on awkward
data (lists, nulls, 1 vs 1.0, dates Python and Qdrant parse differently),
Euclidean scores, BM25 in hybrid search, local-mode limits and the
embedding-space record on disk.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from providers.errors import ConfigError, InvalidRequestError, ProviderCallError
from providers.interfaces.vector_stores import VectorDocument
from providers.vector_stores.filters import matches, parse_filters
from providers.vector_stores.qdrant import QdrantVectorStore, compile_filter, point_id

DIM = 4


@pytest.fixture
async def open_store(tmp_path):
    """``await open_store(**config)``: an initialized store (in memory unless a path is given)."""
    opened: list[QdrantVectorStore] = []

    async def make(**config: Any) -> QdrantVectorStore:
        if "path" not in config and "url" not in config:
            config.setdefault("location", ":memory:")
        store = QdrantVectorStore()
        await store.initialize(config)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


def doc(doc_id: str, vector: Any, content: str = "", **metadata: Any) -> VectorDocument:
    return VectorDocument(id=doc_id, content=content, embedding=np.asarray(vector, dtype=np.float32),
                          metadata=metadata)


# -- configuration ------------------------------------------------------------


async def test_dimension_mismatch_with_existing_collection(open_store, tmp_path):
    path = str(tmp_path / "q")
    store = await open_store(path=path, dimension=DIM)
    await store.close()
    with pytest.raises(ConfigError) as err:
        await open_store(path=path, dimension=DIM + 3)
    assert err.value.path == "config.dimension"
    assert str(DIM) in str(err.value) and str(DIM + 3) in str(err.value)
    again = await open_store(path=path)  # no dimension: taken from the collection
    assert again.dimension == DIM


async def test_distance_mismatch_and_adoption(open_store, tmp_path):
    path = str(tmp_path / "q")
    await (await open_store(path=path, dimension=DIM, distance="l2")).close()
    with pytest.raises(ConfigError, match="config.distance"):
        await open_store(path=path, distance="cosine")
    assert (await open_store(path=path)).distance == "l2"  # not configured: the collection's


async def test_new_collection_without_dimension_names_config_dimension(open_store):
    with pytest.raises(ConfigError, match=r"config\.dimension"):
        await open_store()


@pytest.mark.parametrize("config,field", [
    ({"location": ":memory:", "url": "http://localhost:6333"}, "config"),
    ({"location": ":memory:", "api_key": "k"}, "config.api_key"),
    ({"location": ":memory:", "collection_name": "bad-name"}, "config.collection_name"),
    ({"location": ":memory:", "collection_name": "provider_registry_spaces"}, "config.collection_name"),
])
async def test_bad_configs(config, field):
    with pytest.raises(ConfigError) as err:
        await QdrantVectorStore().initialize({**config, "dimension": DIM})
    assert field in str(err.value)


def test_max_replicas():
    assert QdrantVectorStore.max_replicas({"location": ":memory:"}) == 1
    assert QdrantVectorStore.max_replicas({"path": "/tmp/q"}) == 1
    assert QdrantVectorStore.max_replicas({}) == 1  # the default path is local mode too
    assert QdrantVectorStore.max_replicas({"url": "http://qdrant:6333", "api_key": "k"}) is None


async def test_local_path_is_locked_to_one_client(open_store, tmp_path):
    path = str(tmp_path / "q")
    await open_store(path=path, dimension=DIM)
    with pytest.raises(ConfigError, match="config.path"):
        await open_store(path=path, dimension=DIM)


async def test_default_path_is_created_under_the_working_directory(open_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    await open_store(location=None, dimension=DIM)
    assert (tmp_path / ".data" / "qdrant").is_dir()


async def test_api_key_never_in_errors(open_store):
    secret = "sekrit-api-key-0123456789"
    with pytest.warns(UserWarning, match="insecure"):  # qdrant-client's own warning, key-free
        with pytest.raises(ProviderCallError) as err:
            await open_store(url="http://127.0.0.1:9", api_key=secret, timeout_s=2, dimension=DIM)
    assert secret not in str(err.value) and "failed" in str(err.value)


# -- ids ----------------------------------------------------------------------

ODD_IDS = [
    "plain", "ünïcödé/日本語", "a/b/c", "../../etc/passwd", "with space ", "emoji 🧠", "42", "0",
    "5d3c8a52-6f0e-4d53-9a8e-2b7f6c1e4a90",  # looks like a point id: still mapped, never used raw
    "x" * 512, "quote\"and'apostrophe", "tab\tnew\nline",
]


async def test_odd_ids_round_trip(open_store):
    store = await open_store(dimension=DIM)
    rng = np.random.default_rng(0)
    docs = [doc(i, rng.normal(size=DIM), content=f"c{n}", n=n) for n, i in enumerate(ODD_IDS)]
    assert await store.store_documents(docs) == ODD_IDS
    assert len({point_id(i) for i in ODD_IDS}) == len(ODD_IDS)
    for d in docs:
        got = await store.get_document(d.id)
        assert got is not None and got.id == d.id and got.content == d.content
    assert [d.id for d in await store.search_by_ids(list(reversed(ODD_IDS)))] == list(reversed(ODD_IDS))
    assert [d.id for d in await store.list_documents(limit=100)] == sorted(ODD_IDS)
    hit = (await store.search_similar(docs[1].embedding, top_k=1))[0]
    assert hit.id == ODD_IDS[1]
    assert await store.delete_documents(ODD_IDS[:3] + ["never stored"]) == 3
    assert await store.count_documents() == len(ODD_IDS) - 3


async def test_metadata_round_trips_though_filters_see_a_view(open_store):
    store = await open_store(dimension=DIM)
    metadata = {"tags": ["a", "b"], "none": None, "nested": {"list": [{"k": 1}], "x": 1.0}, "empty": {}}
    await store.store_document(doc("m", np.ones(DIM), **metadata))
    assert (await store.get_document("m")).metadata == metadata
    assert (await store.search_similar(np.ones(DIM), top_k=1))[0].metadata == metadata
    assert await store.count_documents({"tags": "a"}) == 0  # a list equals no scalar
    assert await store.count_documents({"tags": {"$exists": True}}) == 1
    assert await store.count_documents({"none": {"$exists": True}}) == 1  # null exists
    assert await store.count_documents({"nested.list.k": {"$exists": True}}) == 0
    assert await store.count_documents({"nested.x": 1}) == 1  # 1 equals 1.0


# -- filters against the reference semantics ----------------------------------

FIELDS = ["n", "f", "s", "b", "tags", "maybe", "day", "deep.v", "deep.w", "absent"]
DAYS = ["2024-01-05", "2024-1-5", "20240105", "2024-01-05T10:00:00+01:00", "2024-03-01T00:00:00Z",
        "2023-12-31 23:59:59", "not a date", "2024-02-30"]


def random_metadata(rng: random.Random) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "n": rng.choice([0, 1, 2, 3, -1, 10]),
        "f": rng.choice([0.0, 1.0, 1.5, 2.5, -0.5]),  # 1.0 must equal the integer 1
        "s": rng.choice(["a", "b", "c", "1", "true", ""]),
        "b": rng.choice([True, False, 1, 0]),  # true is not 1
        "tags": rng.choice([["a"], ["a", "b"], [], [1, 2], "a"]),
        "maybe": rng.choice([None, 1, "a", {}]),
        "day": rng.choice(DAYS + [20240105, 1.5]),
        "deep": rng.choice([{"v": rng.choice([1, 2, "a", None, [1]])}, {"w": 3}, [{"v": 1}], "flat", {}]),
    }
    return {k: v for k, v in pool.items() if rng.random() < 0.8}


def random_value(rng: random.Random) -> Any:
    return rng.choice([0, 1, 2, 1.0, 1.5, -1, 10, "a", "b", "1", "true", "", True, False, "x"])


def random_condition(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(FIELDS + ["created_at", "updated_at"])
    timestamp = field in ("created_at", "updated_at")
    op = rng.choice(["$eq", "$ne", "$in", "$nin", "$exists", "$gt", "$gte", "$lt", "$lte", "bare"])
    if timestamp:
        op = op if op not in ("$exists", "bare") else "$gte"
        when = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(days=rng.randint(0, 60))
        value: Any = when.isoformat()
        if op in ("$in", "$nin"):
            value = [value, (when + timedelta(days=1)).isoformat()]
        return {field: {op: value}}
    if op == "bare":
        return {field: random_value(rng)}
    if op == "$exists":
        return {field: {op: rng.random() < 0.5}}
    if op in ("$in", "$nin"):
        return {field: {op: [random_value(rng) for _ in range(rng.randint(1, 4))]}}
    if op in ("$gt", "$gte", "$lt", "$lte"):
        bound = rng.choice([0, 1, 1.5, 2, -1, "2024-01-05", "2024-01-05T09:00:00Z", "2024-02-01"])
        return {field: {op: bound}}
    return {field: {op: random_value(rng)}}


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth < 2 and roll < 0.25:
        return {rng.choice(["$or", "$and"]): [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    spec: dict[str, Any] = {}
    for _ in range(rng.randint(1, 2)):
        spec.update(random_condition(rng))
    return spec


async def test_every_operator_agrees_with_matches(open_store):
    store = await open_store(dimension=DIM)
    rng = random.Random(20240601)
    nprng = np.random.default_rng(7)
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    docs = [VectorDocument(id=f"r{i:03d}", content="", embedding=nprng.normal(size=DIM).astype(np.float32),
                           metadata=random_metadata(rng),
                           created_at=base + timedelta(days=rng.randint(0, 60), hours=rng.randint(0, 23)))
            for i in range(80)]
    await store.store_documents(docs)
    stored = {d.id: d for d in await store.list_documents(limit=1000)}  # with the timestamps as stored
    query = nprng.normal(size=DIM).astype(np.float32)
    tried = 0
    for _ in range(400):
        spec = random_filter(rng)
        try:
            tree = parse_filters(spec)
        except InvalidRequestError:
            continue  # e.g. a range over a non-date string: refused for every store alike
        tried += 1
        expected = sorted(i for i, d in stored.items() if matches(tree, d.metadata, d.created_at, d.updated_at))
        assert await store.count_documents(spec) == len(expected), spec
        assert [d.id for d in await store.list_documents(limit=1000, filters=spec)] == expected, spec
        hits = await store.search_similar(query, top_k=5, filters=spec)
        assert len(hits) == min(5, len(expected)) and {h.id for h in hits} <= set(expected), spec
    assert tried > 300


async def test_dates_follow_python_not_qdrant_parsing(open_store):
    store = await open_store(dimension=DIM)
    await store.store_documents([doc(f"d{i}", np.ones(DIM), day=day) for i, day in enumerate(DAYS)])
    got = {d.metadata["day"] for d in await store.list_documents(filters={"day": {"$gte": "2024-01-05"}})}
    # "2024-1-5" is a date to Qdrant, not to Python; "20240105" the other way round.
    assert got == {"2024-01-05", "20240105", "2024-01-05T10:00:00+01:00", "2024-03-01T00:00:00Z"}


def test_compiled_filter_shape():
    compiled = compile_filter(parse_filters({"tags": {"$in": ["a", 1, True]}, "x": {"$ne": 2}}))
    dumped = compiled.model_dump(exclude_none=True)
    any_of, not_two = dumped["must"]
    assert {"key": "metadata.tags", "match": {"any": ["a"]}} in any_of["should"]
    assert not_two["must_not"][0]["range"] == {"gte": 2.0, "lte": 2.0}
    assert compile_filter(None) is None


# -- scores and ranking -------------------------------------------------------


async def test_euclid_scores_are_higher_is_better(open_store):
    store = await open_store(dimension=2, distance="l2")
    points = {"near": [1.0, 0.0], "mid": [0.0, 3.0], "far": [-6.0, -8.0]}
    await store.store_documents([doc(k, v) for k, v in points.items()])
    hits = await store.search_similar(np.zeros(2), top_k=3)
    assert [h.id for h in hits] == ["near", "mid", "far"]
    assert [h.score for h in hits] == pytest.approx([1 / 2, 1 / 4, 1 / 11])  # 1 / (1 + distance)
    assert [h.id for h in await store.search_similar(np.zeros(2), top_k=3, min_score=0.2)] == ["near", "mid"]


async def test_inner_product_scores_are_dot_products(open_store):
    store = await open_store(dimension=2, distance="inner_product")
    await store.store_documents([doc("big", [3.0, 0.0]), doc("small", [1.0, 0.0])])
    hits = await store.search_similar(np.array([2.0, 0.0]), top_k=2)
    assert [(h.id, h.score) for h in hits] == [("big", pytest.approx(6.0)), ("small", pytest.approx(2.0))]


@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
async def test_hybrid_puts_the_keyword_match_first(open_store, fusion):
    store = await open_store(dimension=DIM, hybrid_fusion=fusion)
    rng = np.random.default_rng(1)
    docs = [doc(f"d{i}", rng.normal(size=DIM), content=f"ordinary note number {i}") for i in range(40)]
    docs[23].content = "the quokka colony on rottnest island"
    await store.store_documents(docs)
    query = docs[5].embedding  # the vector side points elsewhere
    text_led = await store.hybrid_search(query, "quokka", top_k=5, vector_weight=0.1)
    assert text_led[0].id == "d23"
    vector_led = await store.hybrid_search(query, "quokka", top_k=5, vector_weight=0.9)
    assert vector_led[0].id == "d5"
    # no words to rank by: plain vector search
    plain = await store.search_similar(query, top_k=5)
    for text in (None, "", "  ?! "):
        assert await store.hybrid_search(query, text, top_k=5) == plain


async def test_hybrid_rejects_a_non_string_query(open_store):
    store = await open_store(dimension=DIM)
    with pytest.raises(InvalidRequestError) as err:
        await store.hybrid_search(np.ones(DIM), 5)
    assert err.value.field == "text_query"


# -- local mode ---------------------------------------------------------------


async def test_space_record_persists_across_reopening(open_store, tmp_path):
    path = str(tmp_path / "q")
    store = await open_store(path=path, dimension=DIM, collection_name="notes")
    space = {"provider": "minilm", "model": "all-MiniLM-L6-v2", "dimension": DIM}
    assert await store.set_embedding_space(space) == space
    await store.close()
    again = await open_store(path=path, collection_name="notes")
    assert await again.get_embedding_space() == space
    assert await again.set_embedding_space({"model": "other", "dimension": DIM}) == space  # first writer wins
    await again.close()
    # a second collection in the same directory has its own record
    other = await open_store(path=path, dimension=DIM, collection_name="others")
    assert await other.get_embedding_space() is None


async def test_space_must_be_an_object(open_store):
    store = await open_store(dimension=DIM)
    for bad in (None, {}, ["model"]):
        with pytest.raises(InvalidRequestError):
            await store.set_embedding_space(bad)


async def test_create_index_says_what_local_mode_ignores(open_store):
    store = await open_store(dimension=DIM)
    await store.create_index({"m": 8, "ef_construct": 64, "payload_indexes": {"topic": "keyword", "day": "datetime"}})
    stats = await store.get_stats()
    assert stats["mode"] == "local" and stats["index"]["m"] == 8
    assert "not applied" in stats["index"]["hnsw"] and "not applied" in stats["index"]["payload_indexes_status"]
    assert stats["hnsw"]["m"] == 16  # unchanged: nothing pretends otherwise
    for bad, field in [({"nope": 1}, "index_params"), ({"m": 0}, "index_params.m"),
                       ({"payload_indexes": {"x": "fulltext"}}, "index_params.payload_indexes.x")]:
        with pytest.raises(InvalidRequestError) as err:
            await store.create_index(bad)
        assert err.value.field == field


async def test_health_after_close_is_reported_not_raised(open_store):
    store = await open_store(dimension=DIM)
    assert (await store.health_check())["status"] == "healthy"
    await store.close()
    health = await store.health_check()
    assert health["status"] == "unhealthy" and health["error"]
    with pytest.raises(ProviderCallError):
        await store.count_documents()


async def test_cosine_vectors_come_back_normalized(open_store):
    # Qdrant normalizes vectors of a cosine collection when it stores them.
    store = await open_store(dimension=2)
    await store.store_document(doc("v", [3.0, 4.0]))
    np.testing.assert_allclose((await store.get_document("v")).embedding, [0.6, 0.8], rtol=1e-6)
