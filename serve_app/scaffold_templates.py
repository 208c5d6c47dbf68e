"""Source templates for `serve_app.scaffold` (``provider-registry add-provider``).

One `TypeTemplate` per provider type: the imports, the config keys its
placeholder behaviour reads, the methods of the type's interface and the
tests that exercise each of them. Kept apart from the generator's logic
because it is data: Python source held as text.

Tokens (``__CLASS__``, ``__PTYPE__``, ...) are replaced with ``str.replace``
rather than ``str.format`` or ``string.Template``: the generated code is full
of braces (dicts) and dollars (Cypher parameters) that would need escaping.

Rules every template keeps, because the generated tests rely on them:

* each interface method starts with a ``# TODO:`` comment saying what a real
  implementation must do, followed by a working placeholder body;
* every interface method is called by at least one generated test, so the
  tests fail as soon as any placeholder body is replaced by
  ``raise NotImplementedError`` (tests/unit/test_scaffold.py checks this for
  every method of every type);
* the tests check the interface's contract, not the placeholder's quirks,
  so they keep passing once the TODOs are done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from providers.types import ProviderType

# The provider name, as a default of a built-in config key (model_name, tool_name).
NAME_TOKEN = "__NAME__"

# Import lines every generated module and test file has; "__MODULE__" is the generated module.
MODULE_IMPORTS = """\
from typing import Any
from providers.registry.config import ProviderConfig, parse_provider_config
"""
TEST_IMPORTS = """\
import asyncio
import json
import pytest
from __MODULE__ import __CLASS__
from providers.errors import ConfigError
from providers.interfaces import interface_for, shape_of
from providers.registry.dependencies import LocalRegistry
from providers.registry.loading import validate_provider_class
from providers.types import ProviderType
"""


@dataclass(frozen=True)
class Builtin:
    """A config key the placeholder behaviour itself reads."""

    default: Any
    types: tuple[type, ...]  # what a user's --config-key override must be
    comment: str


@dataclass(frozen=True)
class TypeTemplate:
    iface: str  # the interface class name
    imports: str  # the module's own import lines (the generator adds the common ones and sorts)
    methods: str  # the interface methods (class level, four spaces in)
    tests: str  # the type's test functions
    builtins: dict[str, Builtin] = field(default_factory=dict)
    state: str = ""  # lines of __init__ after self.settings (eight spaces in)
    helpers: str = ""  # module-level functions after the class
    test_imports: str = ""  # the tests' own import lines
    class_suffix: str = ""  # suggested class name ending (MyReranker)


MODULE = '''\
"""__CLASS__: a __IFACE__ (__PTYPE_VALUE__), scaffolded by `provider-registry add-provider`.

Every method works with a simple placeholder behaviour, so the provider loads,
passes its generated tests and can be served as it is; each "TODO:" says what
a real implementation must do instead. Tests: __TEST_PATH__
"""

from __future__ import annotations

__IMPORTS__

class __CLASS__Config(ProviderConfig):
    """The provider's ``config:`` in providers.yaml; unknown keys fail in initialize."""
__FIELDS__

class __CLASS__(__IFACE__):
    """TODO: say what this provider does and what it needs (a model, a server, a key)."""

    def __init__(self) -> None:
        self.registry: Any = None  # set by the host before initialize: how to reach other providers
        self.settings = __CLASS__Config()
__STATE__
    async def initialize(self, config: dict[str, Any]) -> None:
        # TODO: load the model or open the client the settings describe. Providers
        # this one calls are reached through self.registry: look them up on first
        # use, not here (a Serve config starts every provider at once), and list
        # them under depends_on in providers.yaml.
        self.settings = parse_provider_config(__CLASS__Config, config)
__METHODS__'''

TEST = '''\
"""Tests of __CLASS__, scaffolded by `provider-registry add-provider`.

Class under test: __MODULE__.__CLASS__

The tests pass against the placeholder behaviour and check the __IFACE__
contract, not the placeholder, so they should keep passing once the TODOs are
done. Each runs on its own event loop (asyncio.run): no pytest plugin needed.
"""

from __future__ import annotations

__IMPORTS__
PTYPE = ProviderType.__PTYPE__
# The provider's entry in providers.yaml, as written by add-provider.
CONFIG = __CONFIG__


async def started() -> __CLASS__:
    """An initialized provider, set up the way the registry sets one up."""
    provider = __CLASS__()
    provider.registry = LocalRegistry()  # TODO: add the providers this one calls, if any
    await provider.initialize(dict(CONFIG))
    return provider


def run(scenario):
    """Run ``scenario(provider)`` on one event loop, with a freshly initialized provider."""

    async def main():
        return await scenario(await started())

    return asyncio.run(main())


def test_implements_the_interface():
    assert issubclass(__CLASS__, interface_for(PTYPE))
    validate_provider_class(__CLASS__, PTYPE)  # what the registry checks before loading it


def test_initialize_reads_the_config():
    async def scenario(provider):
        assert provider.settings.model_dump() == CONFIG
        with pytest.raises(ConfigError):
            await provider.initialize({**CONFIG, "no_such_key": 1})

    run(scenario)


def test_sync_getters_are_json_serialisable():
    # The registry reads them once per version and serves them over HTTP.
    async def scenario(provider):
        for name in sorted(shape_of(PTYPE).sync_methods):
            json.dumps(getattr(provider, name)())

    run(scenario)


def test_health_check_reports_healthy():
    async def scenario(provider):
        report = await provider.health_check()
        assert isinstance(report, dict) and report["status"] == "healthy"
        json.dumps(report, default=str)

    run(scenario)
__TESTS__'''

_HEALTH_TODO = (
    "        # TODO: probe the real backend cheaply (a ping, a tiny query) and answer\n"
    '        # {"status": "unhealthy", "error": ...} instead of raising: an unhealthy\n'
    "        # answer opens the provider's circuit breaker in the router.\n"
)

# -- embeddings ---------------------------------------------------------------------------------

EMBEDDINGS = TypeTemplate(
    iface="EmbeddingProvider",
    class_suffix="Embedder",
    imports='''\
import hashlib
from typing import Any

import numpy as np

from providers.interfaces.embeddings import EmbeddingProvider
''',
    builtins={
        "dimension": Builtin(8, (int,), "length of every vector"),
        "model_name": Builtin(NAME_TOKEN, (str,), "what get_model_name reports"),
    },
    methods='''
    async def embed_texts(self, texts: list[str], batch_size: int = 32) -> list[np.ndarray]:
        # TODO: run the real model over texts in batches of batch_size; one float32
        # vector of get_dimension() values per text, in input order.
        return [_placeholder_vector(text, self.settings.dimension) for text in texts]

    async def embed_query(self, query: str) -> np.ndarray:
        # TODO: embed a search query (models such as e5 or bge want a query prefix).
        return _placeholder_vector(query, self.settings.dimension)

    def get_dimension(self) -> int:
        # TODO: the real model's output dimension (read once when the registry describes the provider).
        return self.settings.dimension

    def supports_gpu(self) -> bool:
        # TODO: True when the model runs on, and is configured for, a GPU.
        return False

    def get_model_name(self) -> str:
        # TODO: the real model's identifier, as configured.
        return self.settings.model_name

    async def health_check(self) -> dict[str, Any]:
__HEALTH_TODO__        return {"status": "healthy", "model": self.settings.model_name}
''',
    helpers='''

def _placeholder_vector(text: str, dimension: int) -> np.ndarray:
    """A unit vector from a generator seeded by the text: the same text, the same vector."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)
''',
    test_imports="import numpy as np\n",
    tests='''

def test_embed_texts_gives_one_vector_per_text_in_order():
    async def scenario(provider):
        vectors = await provider.embed_texts(["hello world", "goodbye", "hello world"])
        assert len(vectors) == 3
        for vector in vectors:
            assert vector.shape == (provider.get_dimension(),) and vector.dtype == np.float32
            assert np.all(np.isfinite(vector))
        assert np.allclose(vectors[0], vectors[2])  # the same text, the same vector
        assert not np.allclose(vectors[0], vectors[1])
        again = await provider.embed_texts(["hello world", "goodbye"], batch_size=1)
        assert np.allclose(again[1], vectors[1])  # batching does not change results
        assert await provider.embed_texts([]) == []

    run(scenario)


def test_embed_query_has_the_dimension():
    async def scenario(provider):
        query = await provider.embed_query("hello world")
        assert query.shape == (provider.get_dimension(),) and query.dtype == np.float32
        assert np.all(np.isfinite(query)) and np.linalg.norm(query) > 0

    run(scenario)


def test_getters_answer_from_the_config():
    async def scenario(provider):
        assert provider.get_dimension() == CONFIG["dimension"]
        assert provider.get_model_name() == CONFIG["model_name"]
        assert isinstance(provider.supports_gpu(), bool)

    run(scenario)
''',
)

# -- vector stores ----------------------------------------------------------------------------

VECTOR_STORES = TypeTemplate(
    iface="VectorStore",
    class_suffix="VectorStore",
    imports='''\
import dataclasses
from datetime import datetime, timezone
from typing import Any

import numpy as np

from providers.interfaces.vector_stores import VectorDocument, VectorSearchResult, VectorStore
''',
    state='''\
        self._documents: dict[str, VectorDocument] = {}  # placeholder storage, by id
        self._space: dict[str, Any] | None = None
        self._index_params: dict[str, Any] = {}
''',
    methods='''
    async def store_documents(self, documents: list[VectorDocument]) -> list[str]:
        # TODO: upsert into the real database in one transaction (all or nothing),
        # keeping created_at of documents that existed.
        missing = [document.id for document in documents if document.embedding is None]
        if missing:
            raise ValueError(f"documents without an embedding: {missing}")
        now = datetime.now(timezone.utc)
        for document in documents:
            old = self._documents.get(document.id)
            self._documents[document.id] = dataclasses.replace(
                document, embedding=np.asarray(document.embedding, dtype=np.float32),
                metadata=dict(document.metadata), created_at=old.created_at if old else now, updated_at=now)
        return [document.id for document in documents]

    async def store_document(self, document: VectorDocument) -> str:
        # TODO: upsert one document in the database.
        return (await self.store_documents([document]))[0]

    async def search_similar(
        self,
        query_embedding: np.ndarray,
        top_k: int = 10,
        filters: dict[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[VectorSearchResult]:
        # TODO: ask the database's vector index, with the filters in the query
        # (providers/vector_stores/filters.py parses the whole filter language).
        hits = [_hit(doc, _cosine(query_embedding, doc.embedding)) for doc in self._matching(filters)]
        hits = [hit for hit in hits if min_score is None or hit.score >= min_score]
        return sorted(hits, key=lambda hit: -hit.score)[:top_k]

    async def hybrid_search(
        self,
        query_embedding: np.ndarray,
        text_query: str | None = None,
        top_k: int = 10,
        vector_weight: float = 0.7,
        filters: dict[str, Any] | None = None,
    ) -> list[VectorSearchResult]:
        # TODO: fuse the vector index's ranking with the database's full-text
        # ranking; this placeholder scores text by the share of query words found.
        words = _words(text_query)
        hits = []
        for document in self._matching(filters):
            text_score = len(words & _words(document.content)) / len(words) if words else 0.0
            vector_score = _cosine(query_embedding, document.embedding)
            hits.append(_hit(document, vector_weight * vector_score + (1 - vector_weight) * text_score))
        return sorted(hits, key=lambda hit: -hit.score)[:top_k]

    async def get_document(self, document_id: str) -> VectorDocument | None:
        # TODO: read one document from the database.
        return self._documents.get(document_id)

    async def update_document(self, document: VectorDocument) -> bool:
        # TODO: replace an existing document in the database (and only an existing one).
        if document.id not in self._documents:
            return False
        await self.store_documents([document])
        return True

    async def delete_document(self, document_id: str) -> bool:
        # TODO: delete one document in the database.
        return self._documents.pop(document_id, None) is not None

    async def delete_documents(self, document_ids: list[str]) -> int:
        # TODO: delete in one statement; count what was deleted.
        return sum(self._documents.pop(i, None) is not None for i in dict.fromkeys(document_ids))

    async def count_documents(self, filters: dict[str, Any] | None = None) -> int:
        # TODO: count in the database (SELECT count(*) with the filters).
        return len(self._matching(filters))

    async def list_documents(
        self,
        limit: int = 100,
        offset: int = 0,
        filters: dict[str, Any] | None = None,
    ) -> list[VectorDocument]:
        # TODO: page through the database in a stable order (by id).
        return self._matching(filters)[offset : offset + limit]

    async def create_index(self, index_params: dict[str, Any] | None = None) -> None:
        # TODO: build (or rebuild) the database's vector index (HNSW, IVF, ...).
        self._index_params = dict(index_params or {})

    async def search_by_ids(self, document_ids: list[str]) -> list[VectorDocument]:
        # TODO: read these documents in one query; keep the input order.
        return [self._documents[i] for i in document_ids if i in self._documents]

    async def health_check(self) -> dict[str, Any]:
__HEALTH_TODO__        return {"status": "healthy", "documents": len(self._documents)}

    async def get_stats(self) -> dict[str, Any]:
        # TODO: counts, dimension, index type and settings, storage size, from the database.
        dimensions = {len(document.embedding) for document in self._documents.values()}
        return {"documents": len(self._documents), "dimension": min(dimensions) if dimensions else None,
                "index": "none (placeholder)", "index_params": dict(self._index_params)}

    async def get_embedding_space(self) -> dict[str, Any] | None:
        # TODO: read the recorded space from the database: it must outlive restarts.
        return None if self._space is None else dict(self._space)

    async def set_embedding_space(self, space: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        # TODO: record the space durably and atomically: the first writer wins unless replace.
        if self._space is None or replace:
            self._space = dict(space)
        return dict(self._space)

    async def list_documents_after(
        self,
        after_id: str | None = None,
        limit: int = 100,
        filters: dict[str, Any] | None = None,
    ) -> list[VectorDocument]:
        # TODO: keyset paging in the database (WHERE id > after_id ORDER BY id LIMIT limit).
        return [doc for doc in self._matching(filters) if after_id is None or doc.id > after_id][:limit]

    def _matching(self, filters: dict[str, Any] | None) -> list[VectorDocument]:
        """The documents passing ``filters``, in id order: a stable order to page by."""
        return [self._documents[i] for i in sorted(self._documents) if _matches(self._documents[i], filters)]
''',
    helpers='''

def _matches(document: VectorDocument, filters: dict[str, Any] | None) -> bool:
    """Metadata equality only: enough for the placeholder."""
    return all(document.metadata.get(key) == value for key, value in (filters or {}).items())


def _cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norms if norms else 0.0


def _words(text: str | None) -> set[str]:
    return set((text or "").casefold().split())


def _hit(document: VectorDocument, score: float) -> VectorSearchResult:
    return VectorSearchResult(id=document.id, score=float(score), metadata=dict(document.metadata),
                              content=document.content, embedding=document.embedding)
''',
    test_imports='''\
import dataclasses

import numpy as np

from providers.interfaces.vector_stores import VectorDocument
''',
    tests='''

def documents():
    return [
        VectorDocument("a", "the cat sat", np.array([1.0, 0.0, 0.0]), {"kind": "animal"}),
        VectorDocument("b", "stock markets fell", np.array([0.0, 1.0, 0.0]), {"kind": "finance"}),
        VectorDocument("c", "a cat purred", np.array([0.9, 0.1, 0.0]), {"kind": "animal"}),
    ]


async def filled(provider):
    a, b, c = documents()
    assert await provider.store_documents([a, b]) == ["a", "b"]
    assert await provider.store_document(c) == "c"
    return provider


def test_store_and_get():
    async def scenario(provider):
        await filled(provider)
        got = await provider.get_document("a")
        assert got.content == "the cat sat" and got.metadata == {"kind": "animal"}
        assert np.allclose(got.embedding, [1.0, 0.0, 0.0])
        assert await provider.get_document("nope") is None
        assert [d.id for d in await provider.search_by_ids(["c", "nope", "a"])] == ["c", "a"]

    run(scenario)


def test_search_similar_ranks_by_similarity():
    async def scenario(provider):
        await filled(provider)
        hits = await provider.search_similar(np.array([1.0, 0.0, 0.0]), top_k=2)
        assert [h.id for h in hits] == ["a", "c"]
        assert hits[0].score >= hits[1].score and hits[0].score == pytest.approx(1.0, abs=1e-3)
        assert [h.id for h in await provider.search_similar(np.array([1.0, 0.0, 0.0]),
                                                             filters={"kind": "finance"})] == ["b"]
        assert [h.id for h in await provider.search_similar(np.array([1.0, 0.0, 0.0]), min_score=0.999)] == ["a"]

    run(scenario)


def test_hybrid_search_uses_the_text():
    async def scenario(provider):
        await filled(provider)
        hits = await provider.hybrid_search(np.array([1.0, 0.0, 0.0]), text_query="purred", top_k=1,
                                            vector_weight=0.5)
        assert [h.id for h in hits] == ["c"]

    run(scenario)


def test_update_and_delete():
    async def scenario(provider):
        await filled(provider)
        a = documents()[0]
        assert await provider.update_document(dataclasses.replace(a, content="the cat slept")) is True
        assert (await provider.get_document("a")).content == "the cat slept"
        assert await provider.update_document(dataclasses.replace(a, id="nope")) is False
        assert await provider.delete_document("b") is True
        assert await provider.delete_document("b") is False
        assert await provider.delete_documents(["a", "nope"]) == 1
        assert await provider.count_documents() == 1

    run(scenario)


def test_count_and_page():
    async def scenario(provider):
        await filled(provider)
        assert await provider.count_documents() == 3
        assert await provider.count_documents({"kind": "animal"}) == 2
        assert [d.id for d in await provider.list_documents(limit=2)] == ["a", "b"]
        assert [d.id for d in await provider.list_documents(limit=2, offset=2)] == ["c"]
        assert [d.id for d in await provider.list_documents_after(None, limit=2)] == ["a", "b"]
        assert [d.id for d in await provider.list_documents_after("b")] == ["c"]
        assert [d.id for d in await provider.list_documents_after(None, filters={"kind": "animal"})] == ["a", "c"]

    run(scenario)


def test_index_and_stats():
    async def scenario(provider):
        await filled(provider)
        await provider.create_index({"lists": 4})
        stats = await provider.get_stats()
        assert stats["documents"] == 3
        assert [h.id for h in await provider.search_similar(np.array([0.0, 1.0, 0.0]), top_k=1)] == ["b"]

    run(scenario)


def test_embedding_space_first_writer_wins():
    async def scenario(provider):
        first = {"provider": "e1", "model": "m1", "dimension": 3}
        second = {"provider": "e2", "model": "m2", "dimension": 3}
        assert await provider.get_embedding_space() is None
        assert await provider.set_embedding_space(first) == first
        assert await provider.set_embedding_space(second) == first
        assert await provider.set_embedding_space(second, replace=True) == second
        assert await provider.get_embedding_space() == second

    run(scenario)
''',
)

# -- rerankers ----------------------------------------------------------------------------------

RERANKERS = TypeTemplate(
    iface="Reranker",
    class_suffix="Reranker",
    imports='''\
from providers.interfaces.rerankers import RerankCandidate, RerankResult, Reranker
''',
    builtins={"max_candidates": Builtin(100, (int,), "most candidates one rerank call accepts")},
    methods='''
    async def rerank(
        self,
        query: str,
        candidates: list[RerankCandidate],
        top_k: int | None = None,
    ) -> list[RerankResult]:
        # TODO: score with the real model (a cross-encoder, a reranking API), in batches.
        self._check_count(candidates)
        scores = await self.batch_score_pairs(query, [candidate.content for candidate in candidates])
        results = [_result(candidate, score, score) for candidate, score in zip(candidates, scores)]
        results.sort(key=lambda result: -result.final_score)
        return results if top_k is None else results[:top_k]

    async def score_pair(self, query: str, document: str) -> float:
        # TODO: the real model's relevance score; this placeholder gives the share
        # of the query's words found in the document.
        words = _words(query)
        return len(words & _words(document)) / len(words) if words else 0.0

    def get_reranker_type(self) -> str:
        # TODO: the kind of reranker ("cross_encoder", "embedding_similarity", ...).
        return "word_overlap"

    def supports_batch_reranking(self) -> bool:
        # TODO: True when scoring many pairs at once is cheaper than one by one.
        return False

    def get_max_candidates(self) -> int:
        # TODO: the most candidates the model takes in one call.
        return self.settings.max_candidates

    async def health_check(self) -> dict[str, Any]:
__HEALTH_TODO__        return {"status": "healthy", "reranker_type": "word_overlap"}

    async def rerank_with_fusion(
        self,
        query: str,
        candidates: list[RerankCandidate],
        fusion_method: str = "rrf",
        top_k: int | None = None,
    ) -> list[RerankResult]:
        # TODO: fuse the real rerank scores with the original ones; this placeholder
        # does "rrf" (reciprocal ranks, k = 60) or "weighted" (an even mix).
        if fusion_method not in ("rrf", "weighted"):
            raise ValueError(f"unknown fusion_method {fusion_method!r}: 'rrf' or 'weighted'")
        self._check_count(candidates)
        scores = await self.batch_score_pairs(query, [candidate.content for candidate in candidates])
        originals = [candidate.original_score for candidate in candidates]
        if fusion_method == "rrf":
            final = [1 / (60 + a) + 1 / (60 + b) for a, b in zip(_ranks(scores), _ranks(originals))]
        else:
            final = [0.5 * a + 0.5 * b for a, b in zip(scores, originals)]
        results = [_result(c, s, f) for c, s, f in zip(candidates, scores, final)]
        results.sort(key=lambda result: -result.final_score)
        return results if top_k is None else results[:top_k]

    async def batch_score_pairs(self, query: str, documents: list[str]) -> list[float]:
        # TODO: score all pairs in one model call where the model allows it.
        return [await self.score_pair(query, document) for document in documents]

    def _check_count(self, candidates: list[RerankCandidate]) -> None:
        if len(candidates) > self.settings.max_candidates:
            raise ValueError(f"{len(candidates)} candidates; at most {self.settings.max_candidates}")
''',
    helpers='''

def _words(text: str) -> set[str]:
    return set(text.casefold().split())


def _ranks(scores: list[float]) -> list[int]:
    """1 for the best score, 2 for the next, ... (ties by position)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    ranks = [0] * len(scores)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def _result(candidate: RerankCandidate, rerank_score: float, final_score: float) -> RerankResult:
    return RerankResult(id=candidate.id, content=candidate.content, original_score=candidate.original_score,
                        rerank_score=float(rerank_score), final_score=float(final_score),
                        metadata=dict(candidate.metadata))
''',
    test_imports="from providers.interfaces.rerankers import RerankCandidate\n",
    tests='''
QUERY = "cat sat mat"


def candidates():
    return [
        RerankCandidate("a", "the cat sat on the mat", 0.2),
        RerankCandidate("b", "stock markets fell", 0.9),
        RerankCandidate("c", "a cat", 0.5, {"source": "test"}),
    ]


def test_rerank_puts_the_relevant_first():
    async def scenario(provider):
        results = await provider.rerank(QUERY, candidates())
        assert [r.id for r in results][0] == "a"
        assert sorted(r.id for r in results) == ["a", "b", "c"]
        assert [r.final_score for r in results] == sorted((r.final_score for r in results), reverse=True)
        assert {r.id: r.original_score for r in results} == {"a": 0.2, "b": 0.9, "c": 0.5}
        assert [r.id for r in await provider.rerank(QUERY, candidates(), top_k=1)] == ["a"]

    run(scenario)


def test_scores_pairs():
    async def scenario(provider):
        relevant = await provider.score_pair(QUERY, "the cat sat on the mat")
        unrelated = await provider.score_pair(QUERY, "stock markets fell")
        assert relevant > unrelated
        batch = await provider.batch_score_pairs(QUERY, ["the cat sat on the mat", "stock markets fell"])
        assert batch == pytest.approx([relevant, unrelated])

    run(scenario)


def test_rerank_with_fusion():
    async def scenario(provider):
        for method in ("rrf", "weighted"):
            results = await provider.rerank_with_fusion(QUERY, candidates(), fusion_method=method)
            assert sorted(r.id for r in results) == ["a", "b", "c"]
            assert [r.final_score for r in results] == sorted((r.final_score for r in results), reverse=True)
            top = await provider.rerank_with_fusion(QUERY, candidates(), fusion_method=method, top_k=2)
            assert [r.id for r in top] == [r.id for r in results[:2]]

    run(scenario)


def test_getters():
    async def scenario(provider):
        assert isinstance(provider.get_reranker_type(), str) and provider.get_reranker_type()
        assert isinstance(provider.supports_batch_reranking(), bool)
        assert provider.get_max_candidates() == CONFIG["max_candidates"]

    run(scenario)
''',
)

# -- cache ----------------------------------------------------------------------------------------

CACHE = TypeTemplate(
    iface="CacheProvider",
    class_suffix="Cache",
    imports='''\
import time
from typing import Any

from providers.interfaces.cache import CacheProvider
''',
    builtins={"default_ttl_s": Builtin(None, (int, float, type(None)),
                                       "expiry in seconds when a call gives none (null: never)")},
    state='''\
        self._entries: dict[str, tuple[Any, float | None]] = {}  # key -> (value, time.monotonic() deadline)
        self._hits = self._misses = 0
''',
    methods='''
    async def get(self, key: str) -> Any | None:
        # TODO: read from the real cache; values should be copies (encode them, as
        # providers/caches/codec.py does), so callers cannot change what is cached.
        entry = self._live(key)
        if entry is None:
            self._misses += 1
            return None
        self._hits += 1
        return entry[0]

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        # TODO: write to the real cache with its own expiry (Redis: SET key value EX ttl).
        ttl = self.settings.default_ttl_s if ttl is None else ttl
        self._entries[key] = (value, None if ttl is None else time.monotonic() + ttl)

    async def delete(self, key: str) -> bool:
        # TODO: delete from the real cache.
        live = self._live(key) is not None
        self._entries.pop(key, None)
        return live

    async def exists(self, key: str) -> bool:
        # TODO: ask the real cache (without counting a hit or a miss).
        return self._live(key) is not None

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        # TODO: one round trip (Redis: MGET).
        found = {}
        for key in keys:
            value = await self.get(key)
            if value is not None:
                found[key] = value
        return found

    async def set_many(self, items: dict[str, Any], ttl: float | None = None) -> None:
        # TODO: one round trip (Redis: a pipeline of SETs).
        for key, value in items.items():
            await self.set(key, value, ttl)

    async def clear(self, namespace: str | None = None) -> int:
        # TODO: remove the namespace's keys in the real cache (Redis: SCAN + UNLINK).
        doomed = [key for key in self._entries if namespace is None or key.startswith(namespace + ":")]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    async def get_stats(self) -> dict[str, Any]:
        # TODO: the real cache's counters (hits, misses, size at least).
        return {"hits": self._hits, "misses": self._misses, "size": len(self._entries)}

    async def health_check(self) -> dict[str, Any]:
__HEALTH_TODO__        return {"status": "healthy", "size": len(self._entries)}

    async def close(self) -> None:
        # TODO: close connections (and stop a server this provider started); safe twice.
        self._entries.clear()

    def _live(self, key: str) -> tuple[Any, float | None] | None:
        """The unexpired entry of ``key``; an expired one is dropped."""
        entry = self._entries.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= time.monotonic():
            del self._entries[key]
            return None
        return entry
''',
    tests='''

def test_set_get_delete():
    async def scenario(provider):
        assert await provider.get("missing") is None
        await provider.set("k", {"a": [1, 2]})
        assert await provider.get("k") == {"a": [1, 2]}
        assert await provider.exists("k") is True
        assert await provider.delete("k") is True
        assert await provider.delete("k") is False
        assert await provider.exists("k") is False

    run(scenario)


def test_ttl_expires():
    async def scenario(provider):
        await provider.set("short", "value", ttl=0.05)
        assert await provider.get("short") == "value"
        await asyncio.sleep(0.1)
        assert await provider.get("short") is None

    run(scenario)


def test_many_at_once():
    async def scenario(provider):
        await provider.set_many({"x": 1, "y": "two"})
        assert await provider.get_many(["x", "y", "missing"]) == {"x": 1, "y": "two"}

    run(scenario)


def test_clear_by_namespace():
    async def scenario(provider):
        await provider.set_many({"ns1:a": 1, "ns1:b": 2, "ns2:a": 3})
        assert await provider.clear("ns1") == 2
        assert await provider.get("ns2:a") == 3
        assert await provider.clear() >= 1
        assert await provider.get("ns2:a") is None

    run(scenario)


def test_stats_count_hits_and_misses():
    async def scenario(provider):
        await provider.set("k", 1)
        await provider.get("k")
        await provider.get("missing")
        stats = await provider.get_stats()
        assert stats["hits"] >= 1 and stats["misses"] >= 1 and stats["size"] >= 1

    run(scenario)


def test_close_is_safe_twice():
    async def scenario(provider):
        await provider.close()
        await provider.close()

    run(scenario)
''',
)

# -- tools --------------------------------------------------------------------------------------

TOOLS = TypeTemplate(
    iface="Tool",
    class_suffix="Tool",
    imports='''\
from typing import Any

from providers.interfaces.tools import Tool
''',
    builtins={
        "tool_name": Builtin(NAME_TOKEN, (str,), "what get_name reports"),
        "description": Builtin("Echoes its message back.", (str,), "what get_description reports"),
    },
    methods='''
    def get_name(self) -> str:
        # TODO: the tool's name as callers know it (e.g. "memory.search").
        return self.settings.tool_name

    def get_description(self) -> str:
        # TODO: one or two sentences saying what the tool really does.
        return self.settings.description

    def get_input_schema(self) -> dict[str, Any]:
        # TODO: the JSON Schema of the real arguments (the router validates them before invoke).
        return {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "Text to echo."}},
            "required": ["message"],
            "additionalProperties": False,
        }

    async def invoke(self, arguments: dict[str, Any]) -> Any:
        # TODO: do the real work (through self.registry for other providers); the
        # result must be JSON-serialisable.
        return {"echo": arguments["message"]}

    async def health_check(self) -> dict[str, Any]:
__HEALTH_TODO__        return {"status": "healthy", "tool": self.settings.tool_name}
''',
    test_imports="from jsonschema import Draft202012Validator\n",
    tests='''

def test_describes_itself():
    async def scenario(provider):
        assert provider.get_name() == CONFIG["tool_name"]
        assert isinstance(provider.get_description(), str) and provider.get_description().strip()

    run(scenario)


def test_input_schema_is_valid_json_schema():
    async def scenario(provider):
        schema = provider.get_input_schema()
        Draft202012Validator.check_schema(schema)
        assert Draft202012Validator(schema).is_valid({"message": "hi"})
        assert not Draft202012Validator(schema).is_valid({"no_such_argument": 1})

    run(scenario)


def test_invoke_gives_a_json_result():
    async def scenario(provider):
        result = await provider.invoke({"message": "hi"})
        assert result == {"echo": "hi"}
        json.dumps(result)

    run(scenario)
''',
)

# -- graph clients ------------------------------------------------------------------------------

GRAPH_CLIENTS = TypeTemplate(
    iface="GraphClient",
    class_suffix="GraphClient",
    imports='''\
from typing import Any

from providers.interfaces.graph_clients import GraphClient
''',
    state="        self._open = True\n",
    methods='''
    async def execute(
        self, query: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        # TODO: run the statement on the database with parameters bound (never
        # formatted into the text); rows keyed by the RETURN clause's names. This
        # placeholder answers any statement with its parameters as one row, which
        # is only right for "RETURN $a AS a, $b AS b".
        if not self._open:
            raise RuntimeError("the client is closed")
        return [dict(parameters or {})]

    async def execute_in_transaction(
        self, statements: list[tuple[str, dict[str, Any] | None]]
    ) -> list[list[dict[str, Any]]]:
        # TODO: run the statements in one database transaction (all or nothing).
        return [await self.execute(query, parameters) for query, parameters in statements]

    def supports_transactions(self) -> bool:
        # TODO: True when execute_in_transaction is atomic on this backend.
        return False

    async def health_check(self) -> dict[str, Any]:
__HEALTH_TODO__        return {"status": "healthy" if self._open else "unhealthy"}

    async def close(self) -> None:
        # TODO: close the connection or database handle; safe to call twice.
        self._open = False
''',
    tests='''

def test_execute_returns_rows_by_name():
    async def scenario(provider):
        assert await provider.execute("RETURN $x AS x", {"x": 1}) == [{"x": 1}]
        rows = await provider.execute("RETURN $a AS a, $b AS b", {"a": "one", "b": 2.5})
        assert rows == [{"a": "one", "b": 2.5}]

    run(scenario)


def test_execute_in_transaction_gives_rows_per_statement():
    async def scenario(provider):
        statements = [("RETURN $a AS a", {"a": 1}), ("RETURN $b AS b", {"b": "two"})]
        rows = await provider.execute_in_transaction(statements)
        assert rows == [[{"a": 1}], [{"b": "two"}]]
        assert isinstance(provider.supports_transactions(), bool)

    run(scenario)


def test_close_is_safe_twice():
    async def scenario(provider):
        await provider.close()
        await provider.close()

    run(scenario)
''',
)

# -- graph engines ------------------------------------------------------------------------------

GRAPH_ENGINES = TypeTemplate(
    iface="GraphEngine",
    class_suffix="GraphEngine",
    imports='''\
import dataclasses
import uuid
from datetime import datetime, timezone
from typing import Any

from providers.interfaces.graph_engines import Entity, GraphEngine, GraphSearchResult, Relationship
''',
    state='''\
        self._entities: dict[str, Entity] = {}  # placeholder storage, by id
        self._relationships: dict[str, Relationship] = {}
''',
    methods='''
    async def create_entity(self, entity: Entity) -> str:
        # TODO: MERGE the entity by id in the database, values as query parameters.
        entity_id = entity.id or f"entity:{uuid.uuid4().hex}"
        now = datetime.now(timezone.utc)
        old = self._entities.get(entity_id)
        self._entities[entity_id] = dataclasses.replace(
            entity, id=entity_id, properties=dict(entity.properties),
            created_at=entity.created_at or (old.created_at if old else now), updated_at=entity.updated_at or now)
        return entity_id

    async def create_entities(self, entities: list[Entity]) -> list[str]:
        # TODO: create them in one batched statement (UNWIND).
        return [await self.create_entity(entity) for entity in entities]

    async def get_entity(self, entity_id: str) -> Entity | None:
        # TODO: read the entity from the database.
        return self._entities.get(entity_id)

    async def update_entity(self, entity: Entity) -> bool:
        # TODO: update name, type and properties in the database; False if unknown.
        old = self._entities.get(entity.id)
        if old is None:
            return False
        self._entities[entity.id] = dataclasses.replace(
            old, name=entity.name, entity_type=entity.entity_type, properties=dict(entity.properties),
            updated_at=datetime.now(timezone.utc))
        return True

    async def delete_entity(self, entity_id: str) -> bool:
        # TODO: DETACH DELETE in the database (the entity and its relationships).
        if self._entities.pop(entity_id, None) is None:
            return False
        for rel in list(self._relationships.values()):
            if entity_id in (rel.source_id, rel.target_id):
                del self._relationships[rel.id]
        return True

    async def create_relationship(self, relationship: Relationship) -> str:
        # TODO: create the edge in the database between existing entities.
        for end in (relationship.source_id, relationship.target_id):
            if end not in self._entities:
                raise ValueError(f"no entity {end!r}: create both ends first")
        rel_id = relationship.id or f"rel:{uuid.uuid4().hex}"
        now = datetime.now(timezone.utc)
        self._relationships[rel_id] = dataclasses.replace(
            relationship, id=rel_id, properties=dict(relationship.properties),
            created_at=relationship.created_at or now, updated_at=relationship.updated_at or now)
        return rel_id

    async def create_relationships(self, relationships: list[Relationship]) -> list[str]:
        # TODO: create them in one batched statement (UNWIND).
        return [await self.create_relationship(relationship) for relationship in relationships]

    async def get_relationship(self, relationship_id: str) -> Relationship | None:
        # TODO: read the relationship from the database.
        return self._relationships.get(relationship_id)

    async def delete_relationship(self, relationship_id: str) -> bool:
        # TODO: delete the edge in the database; False if unknown.
        return self._relationships.pop(relationship_id, None) is not None

    async def find_entities(
        self,
        entity_type: str | None = None,
        properties: dict[str, Any] | None = None,
        limit: int = 100,
    ) -> list[Entity]:
        # TODO: MATCH in the database, with type and properties as parameters.
        found = [e for e in self._entities.values() if (entity_type is None or e.entity_type == entity_type)
                 and all(e.properties.get(k) == v for k, v in (properties or {}).items())]
        return found[:limit]

    async def get_entity_relationships(
        self,
        entity_id: str,
        relationship_type: str | None = None,
        direction: str = "both",
    ) -> list[Relationship]:
        # TODO: MATCH the entity's edges in the database in that direction.
        if direction not in ("outgoing", "incoming", "both"):
            raise ValueError(f"direction {direction!r}: 'outgoing', 'incoming' or 'both'")
        return [rel for rel in self._relationships.values()
                if (relationship_type is None or rel.relationship_type == relationship_type)
                and ((direction != "incoming" and rel.source_id == entity_id)
                     or (direction != "outgoing" and rel.target_id == entity_id))]

    async def get_connected_entities(
        self,
        entity_id: str,
        relationship_type: str | None = None,
        max_depth: int = 1,
    ) -> list[Entity]:
        # TODO: a variable-length MATCH in the database (edges in both directions).
        parents = self._walk(entity_id, relationship_type, max_depth)
        return [self._entities[i] for i in parents if i != entity_id]

    async def find_path(
        self, source_id: str, target_id: str, max_depth: int = 3
    ) -> GraphSearchResult | None:
        # TODO: a shortest-path query in the database (edges in both directions).
        if source_id not in self._entities or target_id not in self._entities:
            return None
        parents = self._walk(source_id, None, max_depth)
        if target_id not in parents:
            return None
        node_ids, rels = [target_id], []
        while parents[node_ids[-1]] is not None:
            previous, rel = parents[node_ids[-1]]
            node_ids.append(previous)
            rels.append(rel)
        node_ids.reverse()
        rels.reverse()
        return GraphSearchResult(entities=[self._entities[i] for i in node_ids], relationships=rels,
                                 metadata={"length": len(rels), "source_id": source_id, "target_id": target_id})

    async def execute_cypher(
        self, query: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        # TODO: run the query on the database with parameters bound. This placeholder
        # answers any query with its parameters as one row, which is only right for
        # "RETURN $a AS a".
        return [dict(parameters or {})]

    async def get_entity_timeline(
        self,
        entity_id: str,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> list[dict[str, Any]]:
        # TODO: read the entity's history from the database (see build_timeline in
        # providers/graph/common.py for the events the bundled engines give).
        entity = self._entities.get(entity_id)
        if entity is None:
            return []
        events = [{"timestamp": entity.created_at, "event": "entity_created", "entity_id": entity_id}]
        for rel in await self.get_entity_relationships(entity_id):
            info = {"entity_id": entity_id, "relationship_id": rel.id, "relationship_type": rel.relationship_type}
            events.append({"timestamp": rel.valid_from or rel.created_at, "event": "relationship_started", **info})
            if rel.valid_to is not None:
                events.append({"timestamp": rel.valid_to, "event": "relationship_ended", **info})
        events = [e for e in events if (start_time is None or e["timestamp"] >= start_time)
                  and (end_time is None or e["timestamp"] <= end_time)]
        return sorted(events, key=lambda e: e["timestamp"])

    async def entity_exists(self, entity_id: str) -> bool:
        # TODO: ask the database.
        return entity_id in self._entities

    async def relationship_exists(self, relationship_id: str) -> bool:
        # TODO: ask the database.
        return relationship_id in self._relationships

    async def health_check(self) -> dict[str, Any]:
__HEALTH_TODO__        return {"status": "healthy", "entities": len(self._entities)}

    async def get_stats(self) -> dict[str, Any]:
        # TODO: counts from the database, by type where cheap.
        by_type: dict[str, int] = {}
        for entity in self._entities.values():
            by_type[entity.entity_type] = by_type.get(entity.entity_type, 0) + 1
        return {"entities": len(self._entities), "relationships": len(self._relationships),
                "entities_by_type": by_type}

    def _walk(self, start: str, relationship_type: str | None, max_depth: int) -> dict[str, Any]:
        """Breadth first over edges in both directions: each reached id -> (previous id, edge), start -> None."""
        parents: dict[str, Any] = {start: None}
        frontier = [start]
        for _ in range(max_depth):
            reached = []
            for node in frontier:
                for rel in self._relationships.values():
                    if relationship_type is not None and rel.relationship_type != relationship_type:
                        continue
                    if node in (rel.source_id, rel.target_id):
                        other = rel.target_id if rel.source_id == node else rel.source_id
                        if other not in parents:
                            parents[other] = (node, rel)
                            reached.append(other)
            frontier = reached
        return parents
''',
    test_imports='''\
import dataclasses
from datetime import datetime, timedelta, timezone

from providers.interfaces.graph_engines import Entity, Relationship
''',
    tests='''

async def small_graph(provider):
    """alice -KNOWS-> bob -WORKS_AT-> acme"""
    assert await provider.create_entity(Entity("alice", "Alice", "Person", {"age": 30})) == "alice"
    others = [Entity("bob", "Bob", "Person"), Entity("acme", "Acme", "Company")]
    assert await provider.create_entities(others) == ["bob", "acme"]
    assert await provider.create_relationship(Relationship("r1", "alice", "bob", "KNOWS")) == "r1"
    assert await provider.create_relationships([Relationship("r2", "bob", "acme", "WORKS_AT")]) == ["r2"]


def test_entities():
    async def scenario(provider):
        await small_graph(provider)
        alice = await provider.get_entity("alice")
        assert (alice.name, alice.entity_type, alice.properties) == ("Alice", "Person", {"age": 30})
        assert await provider.get_entity("nope") is None
        assert await provider.entity_exists("alice") is True
        assert await provider.entity_exists("nope") is False
        assert await provider.update_entity(dataclasses.replace(alice, name="Alice B")) is True
        assert (await provider.get_entity("alice")).name == "Alice B"
        assert await provider.update_entity(Entity("nope", "Nobody", "Person")) is False

    run(scenario)


def test_find_entities():
    async def scenario(provider):
        await small_graph(provider)
        assert {e.id for e in await provider.find_entities(entity_type="Person")} == {"alice", "bob"}
        assert [e.id for e in await provider.find_entities(properties={"age": 30})] == ["alice"]
        assert len(await provider.find_entities(limit=1)) == 1

    run(scenario)


def test_relationships():
    async def scenario(provider):
        await small_graph(provider)
        assert (await provider.get_relationship("r1")).target_id == "bob"
        assert await provider.get_relationship("nope") is None
        assert await provider.relationship_exists("r1") is True
        assert {r.id for r in await provider.get_entity_relationships("bob")} == {"r1", "r2"}
        assert [r.id for r in await provider.get_entity_relationships("bob", direction="outgoing")] == ["r2"]
        assert [r.id for r in await provider.get_entity_relationships("bob", direction="incoming")] == ["r1"]
        assert [r.id for r in await provider.get_entity_relationships("bob", "KNOWS")] == ["r1"]
        assert await provider.delete_relationship("r1") is True
        assert await provider.delete_relationship("r1") is False
        assert await provider.relationship_exists("r1") is False

    run(scenario)


def test_traversal_and_paths():
    async def scenario(provider):
        await small_graph(provider)
        assert {e.id for e in await provider.get_connected_entities("alice")} == {"bob"}
        assert {e.id for e in await provider.get_connected_entities("alice", max_depth=2)} == {"bob", "acme"}
        path = await provider.find_path("alice", "acme")
        assert [e.id for e in path.entities] == ["alice", "bob", "acme"]
        assert [r.id for r in path.relationships] == ["r1", "r2"]
        assert await provider.find_path("alice", "acme", max_depth=1) is None

    run(scenario)


def test_execute_cypher_returns_rows_by_name():
    async def scenario(provider):
        assert await provider.execute_cypher("RETURN $x AS x", {"x": 1}) == [{"x": 1}]

    run(scenario)


def test_timeline():
    async def scenario(provider):
        await small_graph(provider)
        events = await provider.get_entity_timeline("alice")
        assert events and events[0]["event"] == "entity_created"
        assert any(e.get("relationship_id") == "r1" for e in events)
        later = datetime.now(timezone.utc) + timedelta(days=1)
        assert await provider.get_entity_timeline("alice", start_time=later) == []
        assert await provider.get_entity_timeline("nope") == []

    run(scenario)


def test_delete_entity_removes_its_relationships():
    async def scenario(provider):
        await small_graph(provider)
        assert await provider.delete_entity("bob") is True
        assert await provider.delete_entity("bob") is False
        assert await provider.get_relationship("r2") is None
        stats = await provider.get_stats()
        assert stats["entities"] == 2 and stats["relationships"] == 0

    run(scenario)
''',
)

# -- graph managers -----------------------------------------------------------------------------

GRAPH_MANAGERS = TypeTemplate(
    iface="GraphManager",
    class_suffix="GraphManager",
    imports='''\
import dataclasses
import uuid
from datetime import datetime, timezone
from typing import Any

from providers.interfaces.graph_engines import Entity, GraphSearchResult, Relationship
from providers.interfaces.graph_managers import EpisodeResult, GraphManager
''',
    state='''\
        # Placeholder storage; a real manager keeps all of it in a graph engine.
        self._entities: dict[str, Entity] = {}
        self._facts: dict[str, Relationship] = {}
        self._episodes: list[dict[str, Any]] = []
''',
    methods='''
    async def add_episode(
        self,
        content: str,
        timestamp: datetime,
        entities: list[Entity] | None = None,
        relationships: list[Relationship] | None = None,
        source: str | None = None,
    ) -> EpisodeResult:
        # TODO: write through a graph engine (self.registry, on first use), extract
        # entities when none are given, and end contradicted facts (a new WORKS_AT
        # ends the old one; see providers/graph/temporal_manager.py).
        when = _utc(timestamp)
        episode_id = f"episode:{uuid.uuid4().hex}"
        aliases: dict[str, str] = {}  # the caller's ids and names -> merged ids
        entity_ids = []
        for entity in entities or []:
            merged = self._merge(entity, when)
            aliases[entity.id] = aliases[entity.name] = merged
            entity_ids.append(merged)
        fact_ids = []
        for rel in relationships or []:
            source_id, target_id = (aliases.get(i, i) for i in (rel.source_id, rel.target_id))
            for end in (source_id, target_id):
                if end not in self._entities:
                    raise ValueError(f"relationship {rel.id!r} names no known entity {end!r}")
            fact = dataclasses.replace(
                rel, id=rel.id or f"rel:{uuid.uuid4().hex}", source_id=source_id, target_id=target_id,
                created_at=when, updated_at=when, valid_from=_utc(rel.valid_from) or when,
                valid_to=_utc(rel.valid_to), properties={**rel.properties, "episode_id": episode_id})
            self._facts[fact.id] = fact
            fact_ids.append(fact.id)
        self._episodes.append({"id": episode_id, "content": content, "source": source, "time": when,
                               "entity_ids": entity_ids, "relationship_ids": fact_ids})
        return EpisodeResult(episode_id=episode_id, entity_ids=entity_ids, relationship_ids=fact_ids)

    async def invalidate_relationship(self, relationship_id: str, valid_to: datetime) -> bool:
        # TODO: end the fact in the graph engine (keep it: as_of reads still see it).
        fact = self._facts.get(relationship_id)
        if fact is None:
            return False
        self._facts[relationship_id] = dataclasses.replace(fact, valid_to=_utc(valid_to))
        return True

    async def get_graph_as_of(
        self,
        as_of: datetime,
        entity_id: str | None = None,
        max_depth: int = 1,
    ) -> GraphSearchResult:
        # TODO: read the graph engine, keeping the facts valid at as_of.
        when = _utc(as_of)
        if entity_id is not None:
            result = await self.get_connected_entities(entity_id, None, max_depth, when)
            start = self._entities.get(entity_id)
            if start is not None and _existed(start, when):
                result.entities.insert(0, start)
            return result
        return GraphSearchResult(
            entities=[e for e in self._entities.values() if _existed(e, when)],
            relationships=[f for f in self._facts.values() if _valid_at(f, when)],
            metadata={"as_of": when.isoformat()})

    async def get_entity_relationships(
        self,
        entity_id: str,
        relationship_type: str | None = None,
        direction: str = "both",
        as_of: datetime | None = None,
    ) -> list[Relationship]:
        # TODO: ask the graph engine, keeping the facts valid at as_of (now when None).
        if direction not in ("outgoing", "incoming", "both"):
            raise ValueError(f"direction {direction!r}: 'outgoing', 'incoming' or 'both'")
        when = _utc(as_of) or datetime.now(timezone.utc)
        return [f for f in self._facts.values() if _valid_at(f, when)
                and (relationship_type is None or f.relationship_type == relationship_type)
                and ((direction != "incoming" and f.source_id == entity_id)
                     or (direction != "outgoing" and f.target_id == entity_id))]

    async def get_connected_entities(
        self,
        entity_id: str,
        relationship_type: str | None = None,
        max_depth: int = 1,
        as_of: datetime | None = None,
    ) -> GraphSearchResult:
        # TODO: traverse in the graph engine over the facts valid at as_of.
        seen, frontier, facts = {entity_id}, [entity_id], {}
        for _ in range(max_depth):
            reached = []
            for node in frontier:
                for fact in await self.get_entity_relationships(node, relationship_type, "both", as_of):
                    facts[fact.id] = fact
                    other = fact.target_id if fact.source_id == node else fact.source_id
                    if other not in seen:
                        seen.add(other)
                        reached.append(other)
            frontier = reached
        found = [self._entities[i] for i in seen - {entity_id} if i in self._entities]
        return GraphSearchResult(entities=found, relationships=list(facts.values()),
                                 metadata={"start": entity_id, "max_depth": max_depth})

    async def get_entity_timeline(
        self,
        entity_id: str,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> list[dict[str, Any]]:
        # TODO: read the entity's episodes and facts from the graph engine.
        events = [{"time": ep["time"], "event": "mentioned", "episode_id": ep["id"], "content": ep["content"]}
                  for ep in self._episodes if entity_id in ep["entity_ids"]]
        for fact in self._facts.values():
            if entity_id in (fact.source_id, fact.target_id):
                info = {"relationship_id": fact.id, "type": fact.relationship_type}
                events.append({"time": fact.valid_from, "event": "fact_started", **info})
                if fact.valid_to is not None:
                    events.append({"time": fact.valid_to, "event": "fact_ended", **info})
        lo, hi = _utc(start_time), _utc(end_time)
        events = [e for e in events if (lo is None or e["time"] >= lo) and (hi is None or e["time"] <= hi)]
        events.sort(key=lambda e: (e["time"], e["event"]))
        return [{**e, "time": e["time"].isoformat()} for e in events]

    async def get_changes(self, start_time: datetime, end_time: datetime) -> dict[str, Any]:
        # TODO: read the change log (episodes) from the graph engine.
        lo, hi = _utc(start_time), _utc(end_time)
        episodes = [ep for ep in self._episodes if lo <= ep["time"] <= hi]
        ended = [f.id for f in self._facts.values() if f.valid_to is not None and lo <= f.valid_to <= hi]
        return {"start_time": lo.isoformat(), "end_time": hi.isoformat(),
                "episodes": [ep["id"] for ep in episodes],
                "entities": list(dict.fromkeys(i for ep in episodes for i in ep["entity_ids"])),
                "relationships_started": [i for ep in episodes for i in ep["relationship_ids"]],
                "relationships_ended": ended}

    async def search(
        self,
        query: str,
        entity_type: str | None = None,
        as_of: datetime | None = None,
        limit: int = 10,
    ) -> list[GraphSearchResult]:
        # TODO: search the graph engine (a full-text or vector index on names); this
        # placeholder scores 1.0 for the exact name and 0.8 for a part of it.
        wanted = query.casefold().strip()
        scored = []
        for entity in self._entities.values():
            name = entity.name.casefold()
            score = 1.0 if name == wanted else 0.8 if wanted and wanted in name else 0.0
            if score and (entity_type is None or entity.entity_type == entity_type):
                scored.append((score, entity))
        scored.sort(key=lambda pair: (-pair[0], pair[1].name))
        return [GraphSearchResult(entities=[entity], score=score,
                                  relationships=await self.get_entity_relationships(entity.id, as_of=as_of))
                for score, entity in scored[:limit]]

    async def health_check(self) -> dict[str, Any]:
__HEALTH_TODO__        return {"status": "healthy", "episodes": len(self._episodes)}

    async def get_stats(self) -> dict[str, Any]:
        # TODO: counts from the graph engine.
        ended = sum(1 for fact in self._facts.values() if fact.valid_to is not None)
        return {"episodes": len(self._episodes), "entities": len(self._entities),
                "relationships": len(self._facts), "current_facts": len(self._facts) - ended,
                "invalidated_facts": ended}

    def _merge(self, entity: Entity, when: datetime) -> str:
        """Entities merge by name and type: the id of the one kept."""
        for known in self._entities.values():
            if (known.name.casefold(), known.entity_type) == (entity.name.casefold(), entity.entity_type):
                self._entities[known.id] = dataclasses.replace(
                    known, properties={**known.properties, **entity.properties}, updated_at=when)
                return known.id
        entity_id = entity.id or f"entity:{uuid.uuid4().hex}"
        self._entities[entity_id] = dataclasses.replace(entity, id=entity_id, created_at=when, updated_at=when)
        return entity_id
''',
    helpers='''

def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC datetimes (naive ones are taken as UTC), so all comparisons work."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _valid_at(fact: Relationship, when: datetime) -> bool:
    return fact.valid_from <= when and (fact.valid_to is None or when < fact.valid_to)


def _existed(entity: Entity, when: datetime) -> bool:
    return entity.created_at is None or entity.created_at <= when
''',
    test_imports='''\
from datetime import datetime, timedelta, timezone

from providers.interfaces.graph_engines import Entity, Relationship
''',
    tests='''
T1 = datetime(2024, 1, 1, tzinfo=timezone.utc)
T2 = datetime(2024, 6, 1, tzinfo=timezone.utc)
MIDDLE = datetime(2024, 3, 1, tzinfo=timezone.utc)
LATER = datetime(2024, 9, 1, tzinfo=timezone.utc)


async def two_episodes(provider):
    """Alice works at Acme from T1; from T2 at Globex (the Acme fact ended at T2)."""
    first = await provider.add_episode(
        "Alice works at Acme", T1, source="hr",
        entities=[Entity("a", "Alice", "Person"), Entity("c", "Acme", "Company")],
        relationships=[Relationship("r1", "a", "c", "WORKS_AT")])
    assert len(first.entity_ids) == 2 and len(first.relationship_ids) == 1
    second = await provider.add_episode(
        "Alice moved to Globex", T2,
        entities=[Entity("a2", "Alice", "Person"), Entity("g", "Globex", "Company")],
        relationships=[Relationship("r2", "a2", "g", "WORKS_AT")])
    assert second.entity_ids[0] == first.entity_ids[0]  # Alice merged by name and type
    assert await provider.invalidate_relationship(first.relationship_ids[0], T2) is True
    return first, second


def test_add_episode_and_invalidate():
    async def scenario(provider):
        first, second = await two_episodes(provider)
        assert first.episode_id != second.episode_id
        assert await provider.invalidate_relationship("nope", T2) is False

    run(scenario)


def test_relationships_in_time():
    async def scenario(provider):
        first, second = await two_episodes(provider)
        alice = first.entity_ids[0]
        then = await provider.get_entity_relationships(alice, as_of=MIDDLE)
        assert [r.id for r in then] == first.relationship_ids
        now = await provider.get_entity_relationships(alice, as_of=LATER)
        assert [r.id for r in now] == second.relationship_ids  # the Acme fact ended at T2
        assert await provider.get_entity_relationships(alice, direction="incoming", as_of=LATER) == []
        near = await provider.get_connected_entities(alice, as_of=MIDDLE)
        assert [e.name for e in near.entities] == ["Acme"]

    run(scenario)


def test_graph_as_of():
    async def scenario(provider):
        first, _ = await two_episodes(provider)
        whole = await provider.get_graph_as_of(MIDDLE)
        assert {e.name for e in whole.entities} == {"Alice", "Acme"}
        assert [r.id for r in whole.relationships] == first.relationship_ids
        around = await provider.get_graph_as_of(MIDDLE, entity_id=first.entity_ids[0])
        assert [e.name for e in around.entities] == ["Alice", "Acme"]

    run(scenario)


def test_timeline_and_changes():
    async def scenario(provider):
        first, second = await two_episodes(provider)
        events = await provider.get_entity_timeline(first.entity_ids[0])
        assert {"mentioned", "fact_started", "fact_ended"} <= {e["event"] for e in events}
        assert [e["time"] for e in events] == sorted(e["time"] for e in events)
        assert await provider.get_entity_timeline(first.entity_ids[0], start_time=LATER) == []
        changes = await provider.get_changes(T2 - timedelta(days=1), T2 + timedelta(days=1))
        assert changes["episodes"] == [second.episode_id]
        assert changes["relationships_started"] == second.relationship_ids

    run(scenario)


def test_search_and_stats():
    async def scenario(provider):
        await two_episodes(provider)
        hits = await provider.search("alice")
        assert hits and hits[0].entities[0].name == "Alice"
        assert await provider.search("nobody") == []
        stats = await provider.get_stats()
        assert stats["episodes"] == 2 and stats["entities"] == 3

    run(scenario)
''',
)

TEMPLATES: dict[ProviderType, TypeTemplate] = {
    ProviderType.EMBEDDING: EMBEDDINGS,
    ProviderType.VECTOR_STORE: VECTOR_STORES,
    ProviderType.GRAPH_ENGINE: GRAPH_ENGINES,
    ProviderType.GRAPH_MANAGER: GRAPH_MANAGERS,
    ProviderType.GRAPH_CLIENT: GRAPH_CLIENTS,
    ProviderType.RERANKER: RERANKERS,
    ProviderType.CACHE: CACHE,
    ProviderType.TOOL: TOOLS,
}

HEALTH_TODO = _HEALTH_TODO
