"""One behavioural suite, run on every vector store (real PostgreSQL + pgvector,
real Qdrant local mode): the interface means the same thing whichever serves it."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from providers.errors import ConfigError, InvalidRequestError
from providers.interfaces.vector_stores import VectorDocument
from providers.vector_stores.filters import matches, parse_filters
from tests.stores.conftest import STORES

pytestmark = pytest.mark.parametrize("kind", STORES)
DIM = 8


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def random_docs(n: int, seed: int = 0, dim: int = DIM, prefix: str = "d") -> list[VectorDocument]:
    rng = np.random.default_rng(seed)
    topics = ["ai", "db", "ops", "web"]
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    docs = []
    for i in range(n):
        meta = {"i": i, "topic": topics[i % 4], "score": float(i % 10) / 2,
                "day": (base + timedelta(days=i % 30)).isoformat(), "nested": {"level": i % 3}}
        if i % 5 == 0:
            meta["flag"] = True
        if i % 7 == 0:
            meta["topic_num"] = 1  # a number where other docs have none
        docs.append(VectorDocument(id=f"{prefix}{i:04d}", content=f"document {i} about {topics[i % 4]}",
                                   embedding=unit(rng.normal(size=dim)), metadata=meta))
    return docs


async def test_store_get_round_trip(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    doc = random_docs(1)[0]
    assert await store.store_document(doc) == doc.id
    got = await store.get_document(doc.id)
    assert got.id == doc.id and got.content == doc.content and got.metadata == doc.metadata
    np.testing.assert_allclose(got.embedding, doc.embedding, rtol=1e-6)
    assert got.created_at is not None and got.updated_at is not None
    assert await store.get_document("missing") is None


async def test_upsert_keeps_created_at_and_moves_updated_at(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    doc = random_docs(1)[0]
    await store.store_document(doc)
    first = await store.get_document(doc.id)
    await asyncio.sleep(0.02)
    doc.content = "changed"
    await store.store_documents([doc])
    second = await store.get_document(doc.id)
    assert second.content == "changed"
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert await store.count_documents() == 1


async def test_batch_ids_in_order_and_counts(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    docs = random_docs(120)  # above the pgvector COPY threshold
    random.Random(1).shuffle(docs)
    assert await store.store_documents(docs) == [d.id for d in docs]
    assert await store.count_documents() == 120


async def test_search_matches_brute_force(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    docs = random_docs(400, seed=3)
    await store.store_documents(docs)
    matrix = np.stack([d.embedding for d in docs])
    rng = np.random.default_rng(9)
    recalls = []
    for _ in range(20):
        q = unit(rng.normal(size=DIM))
        truth = {docs[i].id for i in np.argsort(-(matrix @ q))[:10]}
        hits = await store.search_similar(q, top_k=10)
        assert len(hits) == 10
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        recalls.append(len(truth & {h.id for h in hits}) / 10)
    assert np.mean(recalls) >= 0.95, recalls
    # the best hit's score is its cosine similarity
    q = docs[17].embedding
    best = (await store.search_similar(q, top_k=1))[0]
    assert best.id == docs[17].id and best.score == pytest.approx(1.0, abs=1e-4)


async def test_min_score_and_top_k(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    docs = random_docs(50)
    await store.store_documents(docs)
    hits = await store.search_similar(docs[0].embedding, top_k=50, min_score=0.5)
    assert hits and all(h.score >= 0.5 for h in hits)
    matrix = np.stack([d.embedding for d in docs])
    assert len(hits) == int((matrix @ docs[0].embedding >= 0.5 - 1e-6).sum())
    assert len(await store.search_similar(docs[0].embedding, top_k=3)) == 3


FILTERS = [
    {"topic": "ai"},
    {"topic": {"$ne": "ai"}},
    {"topic": {"$in": ["db", "ops"]}},
    {"topic": {"$nin": ["db", "ops"]}},
    {"score": {"$gte": 2, "$lt": 4}},
    {"i": {"$gt": 100}},
    {"flag": True},
    {"flag": {"$exists": True}},
    {"flag": {"$exists": False}},
    {"nested.level": 2},
    {"nested.level": {"$lte": 1}},
    {"day": {"$gte": "2024-01-10T00:00:00+00:00", "$lt": "2024-01-20T00:00:00Z"}},
    {"$or": [{"topic": "ai"}, {"score": {"$gt": 4}}]},
    {"$and": [{"topic": "web"}, {"$or": [{"flag": True}, {"i": {"$lt": 10}}]}]},
    {"topic_num": 1, "topic": "ai"},
    {"topic": 1},  # a number never equals a string
    {"i": {"$in": [1, 2, 3.0]}},
    {"score": {"$gt": "2024-01-01"}},  # a date range over numbers matches nothing
]


async def test_filters_agree_with_the_reference_semantics(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    docs = random_docs(200, seed=5)
    await store.store_documents(docs)
    for spec in FILTERS:
        tree = parse_filters(spec)
        expected = {d.id for d in docs if matches(tree, d.metadata)}
        assert await store.count_documents(spec) == len(expected), spec
        listed = await store.list_documents(limit=1000, filters=spec)
        assert {d.id for d in listed} == expected, spec
        hits = await store.search_similar(docs[0].embedding, top_k=10, filters=spec)
        assert {h.id for h in hits} <= expected, spec
        assert len(hits) == min(10, len(expected)), spec


async def test_selective_filter_still_fills_top_k(make_store, kind):
    # 2% of rows match: an index probe of ef_search candidates alone would
    # find about one of them; iterative scans must keep going.
    store = await make_store(kind, dimension=DIM)
    docs = random_docs(2000, seed=11)
    for i, d in enumerate(docs):
        d.metadata["rare"] = i % 50 == 0
    for start in range(0, 2000, 500):
        await store.store_documents(docs[start:start + 500])
    hits = await store.search_similar(unit(np.ones(DIM)), top_k=10, filters={"rare": True})
    assert len(hits) == 10 and all(h.metadata["rare"] for h in hits)


async def test_timestamp_filters(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    old = random_docs(5, prefix="old")
    for d in old:
        d.created_at = datetime(2020, 1, 1, tzinfo=timezone.utc)
    await store.store_documents(old)
    await store.store_documents(random_docs(3, seed=2, prefix="new"))
    assert await store.count_documents({"created_at": {"$lt": "2021-01-01"}}) == 5
    assert await store.count_documents({"created_at": {"$gte": "2021-01-01T00:00:00Z"}}) == 3
    now = datetime.now(timezone.utc)
    assert await store.count_documents({"updated_at": {"$gte": (now - timedelta(minutes=5)).isoformat()}}) == 8


async def test_hybrid_search_fuses_text_and_vectors(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    docs = random_docs(60, seed=4)
    docs[42].content = "the zeppelin airship landed in lakehurst"
    await store.store_documents(docs)
    query = docs[7].embedding
    text_led = await store.hybrid_search(query, "zeppelin airship", top_k=5, vector_weight=0.1)
    assert text_led[0].id == docs[42].id
    vector_led = await store.hybrid_search(query, "zeppelin airship", top_k=5, vector_weight=1.0)
    assert vector_led[0].id == docs[7].id
    plain = await store.hybrid_search(query, None, top_k=5)
    assert [h.id for h in plain] == [h.id for h in await store.search_similar(query, top_k=5)]
    filtered = await store.hybrid_search(query, "zeppelin", top_k=5, vector_weight=0.1, filters={"topic": "db"})
    assert all(h.metadata["topic"] == "db" for h in filtered)


async def test_update_delete_and_lookup_by_ids(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    docs = random_docs(10)
    await store.store_documents(docs)
    ghost = random_docs(1, prefix="ghost")[0]
    assert await store.update_document(ghost) is False
    assert await store.get_document(ghost.id) is None  # update never inserts
    docs[3].content = "rewritten"
    assert await store.update_document(docs[3]) is True
    assert (await store.get_document(docs[3].id)).content == "rewritten"
    assert await store.delete_document(docs[0].id) is True
    assert await store.delete_document(docs[0].id) is False
    assert await store.delete_documents([docs[1].id, docs[2].id, "nope"]) == 2
    assert await store.count_documents() == 7
    found = await store.search_by_ids([docs[9].id, "nope", docs[4].id])
    assert [d.id for d in found] == [docs[9].id, docs[4].id]


async def test_paging_is_stable_and_complete(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    docs = random_docs(95)
    await store.store_documents(docs)
    by_offset = []
    for offset in range(0, 100, 20):
        by_offset += [d.id for d in await store.list_documents(limit=20, offset=offset)]
    assert by_offset == sorted(d.id for d in docs)
    by_key, after = [], None
    while True:
        page = await store.list_documents_after(after, limit=30)
        if not page:
            break
        by_key += [d.id for d in page]
        after = page[-1].id
    assert by_key == by_offset
    only_ai = await store.list_documents_after(None, limit=100, filters={"topic": "ai"})
    assert [d.id for d in only_ai] == sorted(d.id for d in docs if d.metadata["topic"] == "ai")


BAD_INPUTS = [
    ("wrong dimension", lambda d: setattr(d, "embedding", np.ones(DIM + 1)), "embedding"),
    ("NaN", lambda d: d.embedding.__setitem__(0, np.nan), "embedding"),
    ("infinity", lambda d: d.embedding.__setitem__(1, np.inf), "embedding"),
    ("empty id", lambda d: setattr(d, "id", ""), "id"),
    ("missing embedding", lambda d: setattr(d, "embedding", None), "embedding"),
    ("non-string content", lambda d: setattr(d, "content", 5), "content"),
    ("NaN in metadata", lambda d: d.metadata.__setitem__("x", float("nan")), "metadata"),
]


@pytest.mark.parametrize("label,spoil,field", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
async def test_bad_document_writes_nothing(make_store, kind, label, spoil, field):
    store = await make_store(kind, dimension=DIM)
    docs = random_docs(40)
    spoil(docs[-1])  # the last of the batch: nothing before it may land either
    with pytest.raises(InvalidRequestError) as err:
        await store.store_documents(docs)
    assert err.value.field.startswith("documents[39]") and field in err.value.field
    assert await store.count_documents() == 0


async def test_batch_limits_and_duplicates(make_store, kind):
    store = await make_store(kind, dimension=DIM, max_batch_size=10)
    with pytest.raises(InvalidRequestError, match="limit is 10"):
        await store.store_documents(random_docs(11))
    docs = random_docs(3)
    docs[2].id = docs[0].id
    with pytest.raises(InvalidRequestError, match="appears twice"):
        await store.store_documents(docs)
    with pytest.raises(InvalidRequestError):
        await store.store_documents([])
    assert await store.count_documents() == 0


@pytest.mark.parametrize("spec,field", [
    ({"topic": {"$regex": "a.*"}}, "filters.topic.$regex"),
    ({"$not": {"topic": "ai"}}, "filters.$not"),
    ({"bad key'; DROP TABLE x; --": 1}, "filters.bad key'; DROP TABLE x; --"),
    ({"i": {"$in": []}}, "filters.i.$in"),
    ({"i": {"$gt": [1]}}, "filters.i.$gt"),
])
async def test_bad_filters_are_refused(make_store, kind, spec, field):
    store = await make_store(kind, dimension=DIM)
    await store.store_documents(random_docs(3))
    with pytest.raises(InvalidRequestError) as err:
        await store.search_similar(np.ones(DIM), filters=spec)
    assert err.value.field == field
    assert await store.count_documents() == 3


async def test_bad_queries_are_refused(make_store, kind):
    store = await make_store(kind, dimension=DIM, max_top_k=100)
    for call, field in [
        (store.search_similar(np.ones(DIM + 2)), "query_embedding"),
        (store.search_similar(np.full(DIM, np.nan)), "query_embedding"),
        (store.search_similar(np.ones(DIM), top_k=0), "top_k"),
        (store.search_similar(np.ones(DIM), top_k=101), "top_k"),
        (store.hybrid_search(np.ones(DIM), "x", vector_weight=1.5), "vector_weight"),
    ]:
        with pytest.raises(InvalidRequestError) as err:
            await call
        assert err.value.field == field


async def test_filter_values_are_data_not_code(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    docs = random_docs(4)
    docs[0].metadata["topic"] = "x'); DROP TABLE users; --"
    await store.store_documents(docs)
    assert await store.count_documents({"topic": "x'); DROP TABLE users; --"}) == 1
    assert await store.count_documents() == 4


async def test_embedding_space_first_writer_wins(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    assert await store.get_embedding_space() is None
    first = {"provider": "minilm", "model": "all-MiniLM-L6-v2", "dimension": DIM}
    assert await store.set_embedding_space(first) == first
    assert await store.set_embedding_space({"provider": "e5", "model": "e5", "dimension": DIM}) == first
    other = {"provider": "e5", "model": "e5", "dimension": DIM}
    assert await store.set_embedding_space(other, replace=True) == other
    assert await store.get_embedding_space() == other


async def test_reopen_keeps_documents_space_and_checks_dimension(make_store, kind):
    store = await make_store(kind, name="keep_me", dimension=DIM)
    await store.store_documents(random_docs(5))
    await store.set_embedding_space({"model": "m", "dimension": DIM})
    await store.close()
    again = await make_store(kind, name="keep_me")  # dimension read from the collection
    assert await again.count_documents() == 5
    assert await again.get_embedding_space() == {"model": "m", "dimension": DIM}
    await again.close()
    with pytest.raises(ConfigError, match="config.dimension"):
        await make_store(kind, name="keep_me", dimension=DIM * 2)


async def test_new_collection_needs_a_dimension(make_store, kind):
    with pytest.raises(ConfigError, match="config.dimension"):
        await make_store(kind)


async def test_health_stats_and_reindex(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    docs = random_docs(30)
    await store.store_documents(docs)
    assert (await store.health_check())["status"] == "healthy"
    stats = await store.get_stats()
    assert stats["count"] == 30 and stats["dimension"] == DIM
    await store.create_index({"m": 8, "ef_construction": 32} if kind == "pgvector" else {"m": 8, "ef_construct": 32})
    assert (await store.search_similar(docs[5].embedding, top_k=1))[0].id == docs[5].id


async def test_concurrent_writers_lose_nothing(make_store, kind):
    store = await make_store(kind, dimension=DIM)
    batches = [random_docs(25, seed=s, prefix=f"w{s}_") for s in range(8)]
    await asyncio.gather(*(store.store_documents(b) for b in batches))
    assert await store.count_documents() == 200
