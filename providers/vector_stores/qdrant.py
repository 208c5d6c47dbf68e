"""VECTOR_STORE on Qdrant, through qdrant-client's ``AsyncQdrantClient``.

Three modes: ``location: ":memory:"`` and ``path`` (local mode: qdrant-client
runs the engine in this process; a path is locked by one process, so such a
store runs as one replica) or ``url`` (a Qdrant server; any replica count).

Points. Qdrant ids must be unsigned ints or UUIDs, ours are arbitrary
strings: a point's id is ``uuid5(NAMESPACE, doc_id)`` and the payload keeps
``doc_id``. The payload::

    doc_id, content                  the document
    metadata                         the *filter view* of the metadata (below)
    metadata_raw                     the metadata as given, only where it differs from the view
    metadata_dates                   canonical ISO dates of metadata strings that parse as dates
    created_at, updated_at           ISO 8601, UTC, microseconds

Filters follow ``filters.matches()`` exactly, compiled to a Qdrant ``Filter``
(nothing is post-filtered in Python). Two payload views make that possible:

* Qdrant unwraps arrays (``{"tags": ["a"]}`` matches ``tags == "a"``) and
  treats null as absent; in ``matches()`` a list or null equals nothing but
  *exists*. The filter view replaces every list and null by ``{}``: present,
  equal to no scalar, with no sub-keys.
* ``matches()`` parses metadata dates with ``parse_datetime`` (Python's
  ``fromisoformat``), Qdrant with its own formats (it takes ``2024-1-1``,
  Python does not; Python takes ``20240101``, Qdrant does not). Date ranges
  therefore run on ``metadata_dates``, written with ``parse_datetime``.

Scores are higher-is-better: cosine similarity, dot product, and for l2
``1 / (1 + d)`` where ``d`` is the Euclidean distance Qdrant returns (local
mode and server both report the plain, not squared, distance, smallest first).

Text relevance for ``hybrid_search`` is Qdrant's own BM25 (a text index with
``scoring`` on ``content``, created with the collection), which local mode
implements too in qdrant-client 1.20.

Qdrant cannot order points by a keyword payload (``order_by`` needs a numeric
or datetime index), so paging in ``doc_id`` order scans the matching ids
(payload ``doc_id`` only) and keeps the smallest: O(matching points) a page.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import httpx
import numpy as np
from pydantic import Field, SecretStr
from qdrant_client import AsyncQdrantClient, models

from providers.checks import check_id
from providers.config_base import parse_provider_config
from providers.errors import ConfigError, InvalidRequestError, ProviderCallError, ProviderTimeoutError, RegistryError
from providers.interfaces.vector_stores import VectorDocument, VectorSearchResult, VectorStore
from providers.vector_stores.common import (
    StoreConfig,
    check_documents,
    check_identifier,
    check_ids,
    check_metadata,
    check_min_score,
    check_top_k,
    check_vector,
    check_weight,
    fuse,
)
from providers.vector_stores.filters import TIMESTAMP_FIELDS, Condition, Group, parse_datetime, parse_filters

log = logging.getLogger(__name__)

# Fixed forever: a different namespace would orphan every stored point.
NAMESPACE = uuid.UUID("5d3c8a52-6f0e-4d53-9a8e-2b7f6c1e4a90")
SPACES_COLLECTION = "provider_registry_spaces"
DISTANCES = {"cosine": models.Distance.COSINE, "l2": models.Distance.EUCLID,
             "inner_product": models.Distance.DOT}
SCROLL_PAGE = 1024
DEFAULT_PATH = os.path.join(".data", "qdrant")
INDEX_SCHEMAS = {
    "keyword": models.PayloadSchemaType.KEYWORD, "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT, "bool": models.PayloadSchemaType.BOOL,
    "datetime": models.PayloadSchemaType.DATETIME,
}
LOCAL_NO_HNSW = "not applied: local mode keeps no HNSW graph (every search is exhaustive)"
LOCAL_NO_PAYLOAD_INDEX = "not applied: local mode ignores payload indexes (filters scan every point)"


class QdrantConfig(StoreConfig):
    location: str | None = Field(
        None, pattern=r"^:memory:$",
        description="':memory:' for an in-process store that lives as long as the replica.")
    path: str | None = Field(
        None, min_length=1,
        description="Local mode on disk (default .data/qdrant under the working directory; created if missing).")
    url: str | None = Field(None, pattern=r"^https?://", description="A Qdrant server, e.g. http://qdrant:6333.")
    api_key: SecretStr | None = Field(None, description="The server's API key (url mode); never logged.")
    timeout_s: int = Field(10, ge=1, le=600, description="Seconds per request to a server.")
    collection_name: str = Field("memory_embeddings", description="Collection of the documents.")
    m: int = Field(16, ge=2, le=512, description="HNSW edges per node (server only).")
    ef_construct: int = Field(100, ge=4, le=10_000, description="HNSW build-time beam width (server only).")
    ef_search: int = Field(100, ge=1, le=100_000, description="HNSW search beam width, hnsw_ef (server only).")
    on_disk: bool = Field(False, description="Vectors and HNSW graph on disk rather than in RAM (server only).")
    exact: bool = Field(False, description="Exhaustive search instead of HNSW (local mode always is).")


def _check_settings(s: QdrantConfig) -> None:
    check_identifier(s.collection_name, "config.collection_name")
    if s.collection_name == SPACES_COLLECTION:
        raise ConfigError(f"{SPACES_COLLECTION!r} is reserved for embedding-space records", "config.collection_name")
    if sum(x is not None for x in (s.location, s.path, s.url)) > 1:
        raise ConfigError("give one of location, path and url", "config")
    if s.api_key is not None and s.url is None:
        raise ConfigError("is only used with url", "config.api_key")


def point_id(doc_id: str) -> str:
    """The Qdrant point id of a document id (same string, same point, in every process)."""
    return str(uuid.uuid5(NAMESPACE, doc_id))


def iso(dt: datetime) -> str:
    """Canonical form of a timestamp: UTC, microseconds (qdrant parses it with its first format)."""
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


# -- payload ------------------------------------------------------------------


def filter_view(value: Any) -> tuple[Any, bool]:
    """Metadata with lists and nulls replaced by ``{}``, and whether anything changed.

    ``{}`` is what ``matches()`` sees in a list or null: the key exists, it
    equals no scalar, no range holds on it and it has no sub-keys. Left as
    they are, Qdrant would match ``["a"]`` against ``"a"`` and take null for absent.
    """
    if isinstance(value, dict):
        out, changed = {}, False
        for k, v in value.items():
            out[k], c = filter_view(v)
            changed = changed or c
        return out, changed
    if value is None or isinstance(value, list):
        return {}, True
    return value, False


def date_view(metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata strings that ``parse_datetime`` reads as dates, in canonical ISO form.

    Lists are left out: ``matches()`` never looks into them.
    """
    out: dict[str, Any] = {}
    for k, v in metadata.items():
        if isinstance(v, dict):
            sub = date_view(v)
            if sub:
                out[k] = sub
        elif isinstance(v, str):
            try:
                out[k] = iso(parse_datetime(v, ""))
            except (InvalidRequestError, OverflowError):  # not a date, or past year 9999 in UTC
                pass
    return out


def to_payload(doc: VectorDocument, created: datetime, updated: datetime) -> dict[str, Any]:
    view, changed = filter_view(doc.metadata)
    payload = {"doc_id": doc.id, "content": doc.content, "metadata": view,
               "created_at": iso(created), "updated_at": iso(updated)}
    if changed:
        payload["metadata_raw"] = doc.metadata
    dates = date_view(doc.metadata)
    if dates:
        payload["metadata_dates"] = dates
    return payload


def _metadata(payload: dict[str, Any]) -> dict[str, Any]:
    return payload.get("metadata_raw", payload.get("metadata")) or {}


def _when(payload: dict[str, Any], key: str) -> datetime | None:
    value = payload.get(key)
    return datetime.fromisoformat(value) if value else None


def to_document(record: Any) -> VectorDocument:
    p = record.payload or {}
    vector = record.vector
    return VectorDocument(
        id=p["doc_id"], content=p.get("content", ""),
        embedding=np.asarray(vector, dtype=np.float32) if isinstance(vector, list) else None,
        metadata=_metadata(p), created_at=_when(p, "created_at"), updated_at=_when(p, "updated_at"))


def to_score(raw: float, distance: str) -> float:
    # Qdrant reports the Euclidean distance itself for EUCLID (checked in
    # local mode: [0,0] against [1,0], [2,0] gives 1.0, 2.0): map it to (0, 1], higher is nearer.
    return 1.0 / (1.0 + raw) if distance == "l2" else float(raw)


def to_result(point: Any, distance: str) -> VectorSearchResult:
    p = point.payload or {}
    return VectorSearchResult(id=p["doc_id"], score=to_score(point.score, distance),
                              metadata=_metadata(p), content=p.get("content", ""))


# -- filters ------------------------------------------------------------------


def compile_filter(tree: Group | None) -> models.Filter | None:
    """A Qdrant filter that selects exactly what ``filters.matches()`` accepts."""
    if tree is None:
        return None
    compiled = _compile(tree)
    return compiled if isinstance(compiled, models.Filter) else models.Filter(must=[compiled])


def _compile(node: Group | Condition) -> Any:
    if isinstance(node, Group):
        parts = [_compile(item) for item in node.items]
        return models.Filter(must=parts) if node.kind == "and" else models.Filter(should=parts)
    return _condition(node)


def _not(condition: Any) -> models.Filter:
    return models.Filter(must_not=[condition])


def _condition(c: Condition) -> Any:
    key = c.field if c.timestamp else f"metadata.{c.field}"
    if c.op == "$exists":
        # Absent is the only empty value left in the filter view (lists and nulls are {}).
        empty = models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
        return _not(empty) if c.value else empty
    if c.op == "$eq":
        return _equals(key, c.value, c.timestamp)
    if c.op == "$ne":  # also true where the key is absent, as in matches()
        return _not(_equals(key, c.value, c.timestamp))
    if c.op in ("$in", "$nin"):
        any_of = _one_of(key, c.value, c.timestamp)
        return any_of if c.op == "$in" else _not(any_of)
    return _range(c)


def _bounds(op: str, value: Any) -> dict[str, Any]:
    return {{"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}[op]: value}


def _range(c: Condition) -> models.FieldCondition:
    if isinstance(c.value, datetime):
        # Metadata dates are compared on their canonical copies (see date_view).
        key = c.field if c.timestamp else f"metadata_dates.{c.field}"
        return models.FieldCondition(key=key, range=models.DatetimeRange(**_bounds(c.op, c.value)))
    # Range matches numbers only, never booleans: the rule of matches().
    return models.FieldCondition(key=f"metadata.{c.field}", range=models.Range(**_bounds(c.op, c.value)))


def _equals(key: str, value: Any, timestamp: bool) -> models.FieldCondition:
    if timestamp:
        return models.FieldCondition(key=key, range=models.DatetimeRange(gte=value, lte=value))
    if isinstance(value, (str, bool)):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    # Numbers: MatchValue takes no floats and tells 1 from 1.0; a closed range
    # equates them as JSON does, and skips booleans.
    return models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))


def _one_of(key: str, values: list[Any], timestamp: bool) -> Any:
    strings = [v for v in values if isinstance(v, str) and not timestamp]
    others = [_equals(key, v, timestamp) for v in values if timestamp or not isinstance(v, str)]
    parts = ([models.FieldCondition(key=key, match=models.MatchAny(any=strings))] if strings else []) + others
    return parts[0] if len(parts) == 1 else models.Filter(should=parts)


# -- the store ----------------------------------------------------------------


class QdrantVectorStore(VectorStore):
    def __init__(self) -> None:
        self.settings = QdrantConfig()
        self.client: AsyncQdrantClient | None = None
        self.collection = self.settings.collection_name
        self.dimension: int | None = None
        self.distance = "cosine"
        self.local = True
        self._api_key: str | None = None
        # In-process writes are serialized: an upsert reads created_at before
        # writing, and two interleaved upserts of one id would both miss it.
        self._write_lock = asyncio.Lock()
        self._index_record: dict[str, Any] = {}

    @classmethod
    def max_replicas(cls, config: dict[str, Any]) -> int | None:
        """1 in local mode (the engine is in-process and locks its directory), no limit with a server."""
        return None if (config or {}).get("url") else 1

    # -- what re-embedding needs to know (`deployments.vector_api`) --
    @staticmethod
    def collection_of(config: dict[str, Any]) -> str:
        return str(config.get("collection_name") or QdrantConfig.model_fields["collection_name"].default)

    @staticmethod
    def staging_config(config: dict[str, Any], target: str) -> dict[str, Any]:
        """A new collection; in local mode also a new directory, because one
        process at a time may open a directory and the store's own replica
        keeps the current one open while the copy runs."""
        if config.get("location") == ":memory:":
            raise ConfigError("an in-memory Qdrant store lives inside its replica and cannot be re-embedded "
                              "into another one; use path or url", "config.location")
        staged = {**config, "collection_name": target}
        if not config.get("url"):
            path = str(config.get("path") or DEFAULT_PATH)
            staged["path"] = f"{path.split('@', 1)[0].rstrip('/')}@{target}"
        return staged

    # -- lifecycle --

    async def initialize(self, config: dict[str, Any]) -> None:
        s = self.settings = parse_provider_config(QdrantConfig, config)
        _check_settings(s)
        await self.close()
        self.collection = s.collection_name
        self.local = s.url is None
        self._api_key = s.api_key.get_secret_value() if s.api_key else None
        self.client = self._connect(s)
        try:
            await self._ensure_collection(s)
            await self._ensure_text_index()
            await self._ensure_spaces_collection()
        except BaseException:
            await self.close()  # a local client left open would keep its directory locked
            raise

    def _connect(self, s: QdrantConfig) -> AsyncQdrantClient:
        if s.url:
            # The compatibility check is a blocking request inside the constructor;
            # the first real call reports an unreachable server anyway.
            return AsyncQdrantClient(url=s.url, api_key=self._api_key, timeout=s.timeout_s,
                                     check_compatibility=False)
        if s.location:
            return AsyncQdrantClient(location=s.location)
        path = s.path or DEFAULT_PATH
        os.makedirs(path, exist_ok=True)
        try:
            return AsyncQdrantClient(path=path)
        except RuntimeError as exc:  # portalocker: another client holds the directory
            raise ConfigError(f"{path!r} is in use by another Qdrant client (local mode allows one process; "
                              "use url for a shared server)", "config.path") from exc

    async def _ensure_collection(self, s: QdrantConfig) -> None:
        if await self._call("collection_exists", self._c.collection_exists(self.collection)):
            info = await self._call("get_collection", self._c.get_collection(self.collection))
            self._adopt(info, s)
            return
        if s.dimension is None:
            raise ConfigError(f"is required to create the collection {self.collection!r}", "config.dimension")
        self.dimension, self.distance = s.dimension, s.distance
        await self._create(self.collection, models.VectorParams(
            size=s.dimension, distance=DISTANCES[s.distance], on_disk=s.on_disk or None),
            hnsw_config=models.HnswConfigDiff(m=s.m, ef_construct=s.ef_construct, on_disk=s.on_disk or None))

    def _adopt(self, info: Any, s: QdrantConfig) -> None:
        """Take dimension and distance from an existing collection; a configured value must agree."""
        params = info.config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise ConfigError(f"collection {self.collection!r} has named vectors; this store uses one unnamed vector",
                              "config.collection_name")
        if s.dimension is not None and s.dimension != params.size:
            raise ConfigError(f"is {s.dimension} but collection {self.collection!r} holds {params.size}-d vectors",
                              "config.dimension")
        distance = {v: k for k, v in DISTANCES.items()}.get(params.distance)
        if distance is None:
            raise ConfigError(f"collection {self.collection!r} uses distance {params.distance}, which this store "
                              "does not support", "config.distance")
        if "distance" in s.model_fields_set and s.distance != distance:
            raise ConfigError(f"is {s.distance!r} but collection {self.collection!r} uses {distance!r}",
                              "config.distance")
        self.dimension, self.distance = params.size, distance

    async def _create(self, name: str, vectors: models.VectorParams, **kwargs: Any) -> None:
        try:
            await self._call("create_collection", self._c.create_collection(name, vectors_config=vectors, **kwargs))
        except ProviderCallError:
            # Another replica may have created it in between: that is success.
            if not await self._call("collection_exists", self._c.collection_exists(name)):
                raise

    async def _ensure_text_index(self) -> None:
        # BM25 over content for hybrid_search; local mode does not list it in
        # payload_schema, so it is (idempotently) created at every start there.
        if not self.local:
            info = await self._call("get_collection", self._c.get_collection(self.collection))
            schema = info.payload_schema.get("content")
            if schema is not None and getattr(schema.params, "scoring", None):
                return
        params = models.TextIndexParams(type=models.TextIndexType.TEXT, scoring=True)
        await self._call("create_payload_index",
                         self._c.create_payload_index(self.collection, "content", field_schema=params, wait=True))

    async def _ensure_spaces_collection(self) -> None:
        if not await self._call("collection_exists", self._c.collection_exists(SPACES_COLLECTION)):
            await self._create(SPACES_COLLECTION, models.VectorParams(size=1, distance=models.Distance.DOT))

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await client.close()
            except Exception as exc:  # closing twice, or a dead server: nothing left to do
                log.debug("qdrant close: %s", type(exc).__name__)

    @property
    def _c(self) -> AsyncQdrantClient:
        if self.client is None:
            raise ProviderCallError("qdrant store is not initialized (or closed)")
        return self.client

    async def _call(self, what: str, coro: Any) -> Any:
        """Await a client call; anything it raises becomes a ProviderCallError (api_key scrubbed)."""
        try:
            return await coro
        except RegistryError:
            raise
        except Exception as exc:
            message = f"qdrant {what} failed: {type(exc).__name__}: {exc}"
            if self._api_key:
                message = message.replace(self._api_key, "***")
            cause = getattr(exc, "source", None)  # qdrant wraps transport errors
            timed_out = isinstance(exc, (TimeoutError, httpx.TimeoutException)) or isinstance(
                cause, httpx.TimeoutException)
            raise (ProviderTimeoutError if timed_out else ProviderCallError)(message[:500]) from exc

    # -- writes --

    async def store_documents(self, documents: list[VectorDocument]) -> list[str]:
        docs = check_documents(documents, self.dimension, self.settings.max_batch_size)
        async with self._write_lock:
            await self._upsert(docs, await self._created_at([d.id for d in docs]))
        return [d.id for d in docs]

    async def store_document(self, document: VectorDocument) -> str:
        return (await self.store_documents([document]))[0]

    async def update_document(self, document: VectorDocument) -> bool:
        docs = check_documents([document], self.dimension, 1, where="document")
        async with self._write_lock:
            existing = await self._created_at([docs[0].id])
            if not existing:
                return False
            await self._upsert(docs, existing)
        return True

    async def _created_at(self, ids: list[str]) -> dict[str, datetime]:
        """created_at of the documents among ``ids`` that exist (an upsert keeps it)."""
        records = await self._retrieve(ids, payload=["doc_id", "created_at"])
        return {r.payload["doc_id"]: _when(r.payload, "created_at") for r in records}

    async def _upsert(self, docs: list[VectorDocument], created: dict[str, datetime]) -> None:
        now = datetime.now(timezone.utc)
        points = [models.PointStruct(id=point_id(d.id), vector=d.embedding.tolist(),
                                     payload=to_payload(d, created.get(d.id) or d.created_at or now, now))
                  for d in docs]
        await self._call("upsert", self._c.upsert(self.collection, points=points, wait=True))

    async def delete_document(self, document_id: str) -> bool:
        return await self.delete_documents([check_id(document_id, "document_id")]) == 1

    async def delete_documents(self, document_ids: list[str]) -> int:
        ids = list(dict.fromkeys(check_ids(document_ids, "document_ids", self.settings.max_batch_size)))
        async with self._write_lock:
            found = [r.id for r in await self._retrieve(ids, payload=["doc_id"])]
            if found:
                await self._call("delete", self._c.delete(
                    self.collection, points_selector=models.PointIdsList(points=found), wait=True))
        return len(found)

    # -- reads --

    async def _retrieve(self, doc_ids: list[str], payload: Any = True, vectors: bool = False) -> list[Any]:
        if not doc_ids:
            return []
        records = await self._call("retrieve", self._c.retrieve(
            self.collection, ids=[point_id(i) for i in doc_ids], with_payload=payload, with_vectors=vectors))
        wanted = set(doc_ids)  # a uuid5 collision would be astronomically rare, but cheap to rule out
        return [r for r in records if (r.payload or {}).get("doc_id") in wanted]

    async def get_document(self, document_id: str) -> VectorDocument | None:
        records = await self._retrieve([check_id(document_id, "document_id")], vectors=True)
        return to_document(records[0]) if records else None

    async def search_by_ids(self, document_ids: list[str]) -> list[VectorDocument]:
        ids = check_ids(document_ids, "document_ids", self.settings.max_batch_size)
        by_id = {r.payload["doc_id"]: r for r in await self._retrieve(list(dict.fromkeys(ids)), vectors=True)}
        return [to_document(by_id[i]) for i in ids if i in by_id]

    async def count_documents(self, filters: dict[str, Any] | None = None) -> int:
        query_filter = compile_filter(parse_filters(filters))
        result = await self._call("count", self._c.count(self.collection, count_filter=query_filter, exact=True))
        return int(result.count)

    async def list_documents(self, limit: int = 100, offset: int = 0,
                             filters: dict[str, Any] | None = None) -> list[VectorDocument]:
        limit = check_top_k(limit, self.settings.max_top_k, "limit")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidRequestError("must be a non-negative integer", "offset")
        ids = await self._smallest_ids(offset + limit, compile_filter(parse_filters(filters)))
        return await self._documents_in_order(ids[offset:])

    async def list_documents_after(self, after_id: str | None = None, limit: int = 100,
                                   filters: dict[str, Any] | None = None) -> list[VectorDocument]:
        limit = check_top_k(limit, self.settings.max_top_k, "limit")
        if after_id is not None and not isinstance(after_id, str):
            raise InvalidRequestError("must be a string or null", "after_id")
        ids = await self._smallest_ids(limit, compile_filter(parse_filters(filters)), after=after_id)
        return await self._documents_in_order(ids)

    async def _smallest_ids(self, n: int, query_filter: models.Filter | None, after: str | None = None) -> list[str]:
        """The ``n`` smallest matching doc_ids (as strings) greater than ``after``.

        Qdrant orders points by their uuid, not by doc_id, and cannot range
        over keywords: the matching ids are scanned, keeping only ``n`` in memory.
        """
        best: list[str] = []
        async for page in self._scan_ids(query_filter):
            fresh = [i for i in page if after is None or i > after]
            best = heapq.nsmallest(n, best + fresh)
        return best

    async def _scan_ids(self, query_filter: models.Filter | None) -> AsyncIterator[list[str]]:
        """The matching doc_ids, a scroll page at a time."""
        offset = None
        while True:
            records, offset = await self._call("scroll", self._c.scroll(
                self.collection, scroll_filter=query_filter, limit=SCROLL_PAGE, offset=offset,
                with_payload=["doc_id"], with_vectors=False))
            yield [r.payload["doc_id"] for r in records]
            if offset is None:
                return

    async def _documents_in_order(self, ids: list[str]) -> list[VectorDocument]:
        by_id = {r.payload["doc_id"]: r for r in await self._retrieve(ids, vectors=True)}
        return [to_document(by_id[i]) for i in ids if i in by_id]  # one deleted meanwhile is skipped

    # -- search --

    async def search_similar(self, query_embedding: np.ndarray, top_k: int = 10,
                             filters: dict[str, Any] | None = None,
                             min_score: float | None = None) -> list[VectorSearchResult]:
        vector = check_vector(query_embedding, self.dimension, "query_embedding")
        top_k = check_top_k(top_k, self.settings.max_top_k)
        min_score = check_min_score(min_score)
        hits = await self._vector_hits(vector, top_k, compile_filter(parse_filters(filters)))
        # Hits come best first, so cutting at min_score afterwards still leaves
        # every document above it among the top_k.
        return [h for h in hits if min_score is None or h.score >= min_score]

    async def _vector_hits(self, vector: np.ndarray, limit: int,
                           query_filter: models.Filter | None) -> list[VectorSearchResult]:
        # Local mode always searches exhaustively and warns when given search params.
        params = None if self.local else models.SearchParams(hnsw_ef=self.settings.ef_search,
                                                              exact=self.settings.exact)
        response = await self._call("query_points", self._c.query_points(
            self.collection, query=vector.tolist(), query_filter=query_filter, limit=limit,
            search_params=params, with_payload=True, with_vectors=False))
        return [to_result(p, self.distance) for p in response.points]

    async def hybrid_search(self, query_embedding: np.ndarray, text_query: str | None = None, top_k: int = 10,
                            vector_weight: float = 0.7,
                            filters: dict[str, Any] | None = None) -> list[VectorSearchResult]:
        """Vector ranking fused (``common.fuse``) with Qdrant's BM25 ranking of ``content``.

        Each side contributes its best ``max(4 * top_k, 50)`` documents under
        the same filter. BM25 runs in Qdrant (server and local mode alike) on
        the text index with ``scoring`` this store creates: corpus statistics
        cover the whole collection, not just a candidate set. Without a text
        query (None, empty, or no word characters) this is ``search_similar``.
        """
        if text_query is not None and not isinstance(text_query, str):
            raise InvalidRequestError(f"must be a string, got {type(text_query).__name__}", "text_query")
        weight = check_weight(vector_weight)
        if not text_query or not any(ch.isalnum() for ch in text_query):
            return await self.search_similar(query_embedding, top_k=top_k, filters=filters)
        vector = check_vector(query_embedding, self.dimension, "query_embedding")
        top_k = check_top_k(top_k, self.settings.max_top_k)
        query_filter = compile_filter(parse_filters(filters))
        pool = max(top_k * 4, 50)
        vector_hits = await self._vector_hits(vector, pool, query_filter)
        response = await self._call("query_points", self._c.query_points(
            self.collection, query=models.TextQuery(text=text_query), using="content",
            query_filter=query_filter, limit=pool, with_payload=True, with_vectors=False))
        text_hits = [to_result(p, "bm25") for p in response.points]
        return fuse(vector_hits, text_hits, top_k, weight, method=self.settings.hybrid_fusion,
                    rrf_k=self.settings.rrf_k)

    # -- index and introspection --

    async def create_index(self, index_params: dict[str, Any] | None = None) -> None:
        """Apply HNSW ``m`` / ``ef_construct`` and payload indexes (server only).

        ``index_params``: ``m``, ``ef_construct`` (default: the configured
        ones) and ``payload_indexes``, a mapping of metadata key (or
        ``created_at`` / ``updated_at``) to keyword | integer | float | bool | datetime.
        A datetime index on a metadata key covers its date ranges. Local mode
        has neither HNSW nor payload indexes; ``get_stats()["index"]`` says so.
        """
        params = dict(index_params or {})
        unknown = set(params) - {"m", "ef_construct", "payload_indexes"}
        if unknown:
            raise InvalidRequestError(f"unknown key(s) {sorted(unknown)}; known: m, ef_construct, payload_indexes",
                                      "index_params")
        m = _positive(params.get("m", self.settings.m), "index_params.m")
        ef = _positive(params.get("ef_construct", self.settings.ef_construct), "index_params.ef_construct")
        fields = _payload_fields(params.get("payload_indexes") or {})
        record: dict[str, Any] = {"m": m, "ef_construct": ef, "payload_indexes": {k: s for k, (_, s) in fields.items()}}
        if self.local:
            record["hnsw"] = LOCAL_NO_HNSW
            record["payload_indexes_status"] = LOCAL_NO_PAYLOAD_INDEX if fields else "none requested"
        else:
            await self._call("update_collection", self._c.update_collection(
                self.collection, hnsw_config=models.HnswConfigDiff(m=m, ef_construct=ef)))
            for field, schema in fields.values():
                await self._call("create_payload_index", self._c.create_payload_index(
                    self.collection, field, field_schema=INDEX_SCHEMAS[schema], wait=True))
            record["hnsw"] = "applied (Qdrant rebuilds the graph in the background)"
            record["payload_indexes_status"] = "applied" if fields else "none requested"
        record["at"] = datetime.now(timezone.utc).isoformat()
        self._index_record = record

    async def health_check(self) -> dict[str, Any]:
        start = time.perf_counter()
        out: dict[str, Any] = {"collection": self.collection, "mode": "local" if self.local else "remote"}
        try:
            info = await self._c.get_collection(self.collection)
            out.update(status="healthy", points=info.points_count)
        except Exception as exc:  # health checks report, never raise
            message = f"{type(exc).__name__}: {exc}"
            if self._api_key:
                message = message.replace(self._api_key, "***")
            out.update(status="unhealthy", error=message[:300])
        out["response_time"] = round(time.perf_counter() - start, 4)
        return out

    async def get_stats(self) -> dict[str, Any]:
        s = self.settings
        info = await self._call("get_collection", self._c.get_collection(self.collection))
        hnsw = info.config.hnsw_config
        stats: dict[str, Any] = {
            "count": await self.count_documents(),
            "dimension": self.dimension,
            "distance": self.distance,
            "collection": self.collection,
            "mode": "local" if self.local else "remote",
            "index_type": "exhaustive (local mode)" if self.local else ("exact" if s.exact else "hnsw"),
            "hnsw": {"m": hnsw.m, "ef_construct": hnsw.ef_construct, "ef_search": s.ef_search, "on_disk": s.on_disk},
            "text_index": "bm25 on content",
            "status": str(getattr(info.status, "value", info.status)),
            "index": self._index_record or None,
        }
        if self.local:
            stats["storage"] = s.location or os.path.abspath(s.path or DEFAULT_PATH)
            size = _directory_bytes(os.path.join(stats["storage"], "collection", self.collection))
            if size is not None:
                stats["storage_bytes"] = size
        return stats

    # -- embedding space --

    async def get_embedding_space(self) -> dict[str, Any] | None:
        records = await self._call("retrieve", self._c.retrieve(
            SPACES_COLLECTION, ids=[point_id(self.collection)], with_payload=True))
        for r in records:
            if (r.payload or {}).get("collection") == self.collection:
                return r.payload.get("space")
        return None

    async def set_embedding_space(self, space: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        if not isinstance(space, dict) or not space:
            raise InvalidRequestError("must be a non-empty object", "space")
        space = check_metadata(space, "space")
        point = models.PointStruct(id=point_id(self.collection), vector=[1.0],
                                   payload={"collection": self.collection, "space": space})
        # INSERT_ONLY makes "first writer wins" atomic on a server shared by replicas.
        mode = models.UpdateMode.UPSERT if replace else models.UpdateMode.INSERT_ONLY
        await self._call("upsert", self._c.upsert(SPACES_COLLECTION, points=[point], wait=True, update_mode=mode))
        recorded = await self.get_embedding_space()
        if recorded is None:
            raise ProviderCallError("qdrant: the embedding-space record was not readable after writing it")
        return recorded


def _positive(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError("must be a positive integer", where)
    return value


def _payload_fields(spec: Any) -> dict[str, tuple[str, str]]:
    """``{key: (payload field, schema)}`` of ``payload_indexes`` (validated like filter keys)."""
    where = "index_params.payload_indexes"
    if not isinstance(spec, dict):
        raise InvalidRequestError("must map metadata keys to index types", where)
    out = {}
    for key, schema in spec.items():
        if schema not in INDEX_SCHEMAS:
            raise InvalidRequestError(f"unknown index type {schema!r}; known: {', '.join(INDEX_SCHEMAS)}",
                                      f"{where}.{key}")
        if key in TIMESTAMP_FIELDS:
            if schema != "datetime":
                raise InvalidRequestError("timestamps take a datetime index", f"{where}.{key}")
            out[key] = (key, schema)
            continue
        parse_filters({key: {"$exists": True}}, where)  # the filter language's key rules
        out[key] = (f"metadata_dates.{key}" if schema == "datetime" else f"metadata.{key}", schema)
    return out


def _directory_bytes(path: str) -> int | None:
    if not os.path.isdir(path):
        return None
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)
