"""Vector stores in the router: text in and out through a store's embedder,
re-embedding, and the HTTP endpoints. The embedding-space guard that keeps one
model per store is `deployments.vector_space_guard`.

Text sent to a store over HTTP is embedded by the store's embedder with a
fallback chain cut to embedders of the same space: a fallback of another
model would put vectors in the store that the guard cannot see.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from deployments.http_api import BodyReader, error_response, json_body, json_response, registry_error_response, route
from deployments.lifecycle import Lifecycle
from deployments.logs import provider_log
from deployments.rollout import Rollout
from deployments.router_core import RouterCore
from deployments.table_store import TABLE_POLL_S
from deployments.vector_space_guard import FROZEN_KEY, VS, embedding_space
from providers.errors import ConfigError, InvalidRequestError
from providers.idempotency import REQUEST_ID_HEADER, write_id
from providers.interfaces.vector_stores import VectorDocument
from providers.registry.limits import check_call, check_text, limit_error
from providers.registry.loading import load_provider_class
from providers.registry.table import Route
from providers.types import ProviderType
from providers.vector_stores.common import describe_space, space_differs

logger = logging.getLogger("ray.serve")

# updated_at is the database's clock, the checkpoints the router's: look back this far to cover skew.
CLOCK_SKEW_S = 60
REEMBED_SUFFIX = ".reembed"


class VectorStores:
    """Text in and out through a store's embedder, and re-embedding a store."""

    def __init__(self, core: RouterCore, lifecycle: Lifecycle, rollout: Rollout) -> None:
        self.core, self.lifecycle, self.rollout = core, lifecycle, rollout
        self._reembed_locks: dict[str, asyncio.Lock] = {}  # one per store: its re-embed steps never overlap

    # -- text through a store's embedder -----------------------------------------------
    async def _same_space_chain(self, embedder: str) -> list[str]:
        wanted = await embedding_space(self.core, embedder)
        chain = [embedder]
        for name in self.core.chain(ProviderType.EMBEDDING, embedder)[1:]:
            try:
                if not space_differs(await embedding_space(self.core, name), wanted):
                    chain.append(name)
            except Exception:  # a fallback that cannot describe itself cannot serve either
                continue
        return chain

    async def embed_for_store(self, name: str, texts: list[str], query: bool = False) -> list[Any]:
        """Embed ``texts`` with store ``name``'s embedder (same-space fallbacks only)."""
        route = await self.core.route(VS, name)
        embedder = route.spec.embedder
        if embedder is None:
            raise InvalidRequestError(
                f"vector store {name!r} has no embedder configured: send embeddings, or set its 'embedder'",
                "embedding")
        chain = await self._same_space_chain(embedder)
        if query:
            return [await self.core.embed(embedder, "embed_query", texts[0], chain=chain)]
        return await self.core.embed(embedder, "embed_texts", texts, chain=chain)

    # -- re-embedding ------------------------------------------------------------------------
    async def reembed_step(self, name: str, embedder: str | None = None, target: str | None = None,
                           batch_size: int = 256) -> dict[str, Any]:
        """Advance the re-embedding of store ``name`` by one batch; call until ``done``.

        Phases, each resumable from the checkpoint kept in the staging store's
        recorded space (so a crashed client, router or provider loses nothing
        and repeats at most one batch):

        1. ``copy``: page through the store by id, embed each page's content
           with the new embedder, upsert into ``<name>.reembed`` (a new
           collection; same class and config otherwise);
        2. ``catchup``: copy again what was written to the store since the
           copy began (``updated_at`` >= its start), writes still flowing;
        3. ``freeze``: the store refuses changes (409, retry) in every router
           replica (route metadata, followed within `TABLE_POLL_S`);
        4. ``final``: copy what was written since the catch-up began: now
           nothing can slip past;
        5. ``prune``: delete from the new collection what was deleted from the
           store meanwhile;
        6. flip: swap ``name`` to the new collection and embedder (a normal
           hot swap: health-checked, no request dropped), which also lifts the
           freeze, and drop the staging route.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
            raise InvalidRequestError("must be an integer from 1 to 10000", "batch_size")
        async with self._reembed_locks.setdefault(name, asyncio.Lock()):
            state = await self._reembed_state(name, embedder, target)
            return await self._reembed_advance(name, state, batch_size)

    async def _reembed_state(self, name: str, embedder: str | None, target: str | None) -> dict[str, Any]:
        route = await self.core.route(VS, name)
        staging = name + REEMBED_SUFFIX
        existing = self.core.table.routes.get(f"{VS.value}/{staging}")
        embedder = embedder or (existing.spec.embedder if existing else None) or route.spec.embedder
        if embedder is None:
            raise InvalidRequestError(f"vector store {name!r} has no embedder; name one to re-embed with",
                                      "embedder")
        await self.core.route(ProviderType.EMBEDDING, embedder)
        space = await embedding_space(self.core, embedder)
        cls = self._store_class(route)
        if existing is None:
            current = cls.collection_of(route.spec.config)
            target = target or _target_name(current, space)
            if target == current:
                raise InvalidRequestError("must differ from the store's current collection", "target")
            options = {"deployment": route.spec.deployment.model_dump(mode="json", exclude_none=True),
                       "embedder": embedder, "call_timeout_s": route.spec.call_timeout_s}
            await self.lifecycle.register_provider(VS, staging, route.spec.class_path,
                                         cls.staging_config(route.spec.config, target), {"reembed_of": name},
                                         options)
            existing = self.core.table.get(VS, staging)
        elif existing.spec.embedder != embedder:
            raise ConfigError(f"a re-embed of {name!r} with embedder {existing.spec.embedder!r} is in progress; "
                              f"finish it, or delete {staging!r} to start over", "embedder")
        recorded = await self.core.invoke(existing, "get_embedding_space") or {}
        progress = recorded.get("reembed") or {}
        if not progress:
            progress = {"phase": "copy", "after_id": None, "copied": 0, "pruned": 0, "started_at": _now()}
        return {"store": route, "staging": existing, "space": space, "progress": progress}

    async def _reembed_advance(self, name: str, state: dict[str, Any], batch_size: int) -> dict[str, Any]:
        store, staging, space, p = state["store"], state["staging"], state["space"], dict(state["progress"])
        phase = p["phase"]
        if phase in ("copy", "catchup", "final"):
            since = {"copy": None, "catchup": p["started_at"], "final": p.get("catchup_from")}[phase]
            filters = {"updated_at": {"$gte": _minus_skew(since)}} if since else None
            page = await self.core.invoke(store, "list_documents_after", p["after_id"], batch_size, filters)
            if page:
                vectors = await self.embed_for_store(staging.name, [d.content for d in page])
                fresh = [VectorDocument(id=d.id, content=d.content, embedding=v, metadata=d.metadata,
                                        created_at=d.created_at) for d, v in zip(page, vectors)]
                await self.core.call(VS, staging.name, "store_documents", [fresh], use_fallback=False)
                p["after_id"], p["copied"] = page[-1].id, p["copied"] + len(page)
            elif phase == "copy":
                p.update(phase="catchup", after_id=None, catchup_from=_now())
            elif phase == "catchup":
                p.update(phase="freeze", after_id=None)
            else:
                p.update(phase="prune", after_id=None)
        elif phase == "freeze":
            await self._set_frozen(name, True)
            await asyncio.sleep(2 * TABLE_POLL_S + 0.5)  # every router replica has seen it
            p.update(phase="final", after_id=None)
        elif phase == "prune":
            page = await self.core.invoke(staging, "list_documents_after", p["after_id"], batch_size, None)
            if page:
                ids = [d.id for d in page]
                alive = {d.id for d in await self.core.invoke(store, "search_by_ids", ids)}
                gone = [i for i in ids if i not in alive]
                if gone:
                    p["pruned"] += await self.core.invoke(staging, "delete_documents", gone)
                p["after_id"] = ids[-1]
            else:
                p["phase"] = "flip"
        if p["phase"] == "flip":
            result = await self._reembed_flip(name, staging, space)
            return {"store": name, "phase": "done", "done": True, "copied": p["copied"], "pruned": p["pruned"],
                    **result}
        await self.core.invoke(staging, "set_embedding_space", {**space, "reembed": p}, replace=True)
        total = await self.core.invoke(store, "count_documents")
        return {"store": name, "phase": p["phase"], "done": False, "copied": p["copied"], "total": total,
                "pruned": p["pruned"], "staging": staging.name, "embedder": staging.spec.embedder}

    async def _set_frozen(self, name: str, frozen: bool) -> None:
        """Mark (or unmark) store ``name`` as taking no changes; no redeploy, the same version."""
        async with self.core.mutating():
            route = self.core.table.get(VS, name)
            metadata = {k: v for k, v in route.spec.metadata.items() if k != FROZEN_KEY}
            if frozen:
                metadata[FROZEN_KEY] = True
            spec = route.spec.model_copy(update={"metadata": metadata})
            await self.core.commit(self.core.table.with_route(route.model_copy(update={"spec": spec}), replace=True))

    async def reembed_abort(self, name: str) -> dict[str, Any]:
        """Give up a re-embed: lift the freeze, drop the staging route (its collection stays)."""
        await self.core.route(VS, name)
        staging = name + REEMBED_SUFFIX
        await self._set_frozen(name, False)
        dropped = f"{VS.value}/{staging}" in self.core.table.routes
        if dropped:
            await self.lifecycle.delete_provider(VS, staging)
        return {"store": name, "aborted": True, "staging_deleted": dropped}

    async def _reembed_flip(self, name: str, staging: Route, space: dict[str, Any]) -> dict[str, Any]:
        # The staging deployment goes first: an embedded store with one process
        # per data directory (Qdrant's local mode) cannot be opened by the new
        # version while staging holds it. Its collection and checkpoint stay,
        # so a failed swap is retried by running reembed again.
        await self.lifecycle.delete_provider(VS, staging.name)
        route = await self.core.route(VS, name)
        metadata = {k: v for k, v in route.spec.metadata.items() if k != FROZEN_KEY}  # the new version takes changes
        swapped = await self.rollout.swap_provider(VS, name, {"config": staging.spec.config, "embedder": staging.spec.embedder,
                                                      "metadata": metadata}, watch=False)
        await self.core.invoke(await self.core.route(VS, name), "set_embedding_space", space, replace=True)
        collection = self._store_class(staging).collection_of(staging.spec.config)
        provider_log(logger, logging.INFO, "re-embedded into collection %s with %s", collection,
                     describe_space(space), ptype=VS, name=name, version=swapped.get("version"))
        return {**swapped, "collection": collection, "space": space}

    def _store_class(self, route: Route) -> Any:
        cls = load_provider_class(route.spec.class_path, VS, self.core.allowed)
        if not (hasattr(cls, "collection_of") and hasattr(cls, "staging_config")):
            raise ConfigError(f"{route.spec.class_path} cannot be re-embedded: it does not define "
                              "collection_of(config) and staging_config(config, target)")
        return cls


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _minus_skew(iso: str) -> str:
    return (datetime.fromisoformat(iso) - timedelta(seconds=CLOCK_SKEW_S)).isoformat()


def _target_name(current: str, space: dict[str, Any]) -> str:
    """``memory_embeddings`` -> ``memory_embeddings_r1a2b3c4``: a plain identifier, unique per space."""
    base = re.sub(r"_r[0-9a-f]{8}$", "", current)  # a store re-embedded before keeps one suffix
    tag = uuid.uuid5(uuid.NAMESPACE_URL, f"{space.get('model')}/{space.get('dimension')}").hex[:8]
    return f"{base[:50]}_r{tag}"


# -- HTTP -----------------------------------------------------------------------------------------

class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1, max_length=512, description="Generated (UUID) when absent.")
    content: str = Field("", description="The text; embedded by the store's embedder when no embedding is sent.")
    embedding: list[float] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None


class UpsertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(..., min_length=1)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding: list[float] | None = Field(None, description="A query vector; or send text.")
    text: str | None = Field(None, description="Query text, embedded by the store's embedder.")
    top_k: int = Field(10, ge=1)
    filters: dict[str, Any] | None = None
    min_score: float | None = None
    hybrid: bool = Field(False, description="Fuse full-text relevance of text with vector similarity.")
    vector_weight: float = Field(0.7, ge=0.0, le=1.0)
    include_embeddings: bool = False


def _doc_json(doc: VectorDocument, include_embedding: bool) -> dict[str, Any]:
    out = {"id": doc.id, "content": doc.content, "metadata": doc.metadata,
           "created_at": doc.created_at.isoformat() if doc.created_at else None,
           "updated_at": doc.updated_at.isoformat() if doc.updated_at else None}
    if include_embedding and doc.embedding is not None:
        out["embedding"] = doc.embedding
    return out


class VectorStoreRoutes:
    """``/v1/vector_stores/{name}/...``: documents in (embedded when sent as text), search, stats."""

    def __init__(self, core: RouterCore, vectors: VectorStores, body: BodyReader) -> None:
        self.core, self.vectors, self.body = core, vectors, body

    @route("POST", "/v1/vector_stores/{name}/documents", openapi_extra=json_body(UpsertRequest))
    async def http_upsert(self, name: str, request: Request) -> Response:
        try:
            body = await self.body.parse(request, UpsertRequest)
            await self.core.route(VS, name)
            # Ids the caller left out repeat when HAProxy sends the request again (providers/idempotency.py).
            key = request.headers.get(REQUEST_ID_HEADER)
            docs = [VectorDocument(id=d.id or write_id(key, f"vector_stores/{name}", i, d.content),
                                   content=d.content, embedding=d.embedding, metadata=d.metadata,
                                   created_at=d.created_at) for i, d in enumerate(body.documents)]
            # The limits of store_documents, before any embedding work is spent on a batch they refuse.
            check_call("store_documents", [docs], {}, self.core.settings)
            missing = [i for i, d in enumerate(docs) if d.embedding is None]
            if missing:
                s = self.core.settings
                if len(missing) > s.max_texts_per_request:  # each one a model forward pass
                    raise limit_error(f"has {len(missing)} documents without an embedding to embed",
                                      s.max_texts_per_request, "registry.max_texts_per_request", "documents")
                vectors = await self.vectors.embed_for_store(name, [docs[i].content for i in missing])
                for i, vector in zip(missing, vectors):
                    docs[i].embedding = vector
            ids = await self.core.call(VS, name, "store_documents", [docs])
        except Exception as exc:
            return registry_error_response(exc, param="name")
        return json_response({"ids": ids, "count": len(ids), "embedded": len(missing)})

    @route("POST", "/v1/vector_stores/{name}/search", openapi_extra=json_body(SearchRequest))
    async def http_search(self, name: str, request: Request) -> Response:
        try:
            body = await self.body.parse(request, SearchRequest)
            await self.core.route(VS, name)
            if body.embedding is None and not body.text:
                raise InvalidRequestError("send an embedding or a text to search with", "text")
            if body.hybrid and not body.text:
                raise InvalidRequestError("hybrid search needs the query text", "text")
            vector = body.embedding
            if vector is None:
                check_text(body.text, "text", self.core.settings.max_chars_per_text)
                vector = (await self.vectors.embed_for_store(name, [body.text], query=True))[0]
            if body.hybrid:
                hits = await self.core.call(VS, name, "hybrid_search", [vector],
                                       {"text_query": body.text, "top_k": body.top_k,
                                        "vector_weight": body.vector_weight, "filters": body.filters})
                if body.min_score is not None:
                    hits = [h for h in hits if h.score >= body.min_score]
            else:
                hits = await self.core.call(VS, name, "search_similar", [vector],
                                       {"top_k": body.top_k, "filters": body.filters, "min_score": body.min_score})
        except Exception as exc:
            return registry_error_response(exc, param="name")
        results = [{"id": h.id, "score": h.score, "content": h.content, "metadata": h.metadata,
                    **({"embedding": h.embedding} if body.include_embeddings and h.embedding is not None else {})}
                   for h in hits]
        return json_response({"results": results, "count": len(results)})

    @route("GET", "/v1/vector_stores/{name}/documents/{doc_id:path}")
    async def http_get_document(self, name: str, doc_id: str, include_embedding: bool = False) -> Response:
        try:
            doc = await self.core.call(VS, name, "get_document", [doc_id])
        except Exception as exc:
            return registry_error_response(exc, param="name")
        if doc is None:
            return error_response(404, f"vector store {name!r} has no document {doc_id!r}", "id", "not_found")
        return json_response(_doc_json(doc, include_embedding))

    @route("DELETE", "/v1/vector_stores/{name}/documents/{doc_id:path}")
    async def http_delete_document(self, name: str, doc_id: str) -> Response:
        try:
            deleted = await self.core.call(VS, name, "delete_document", [doc_id])
        except Exception as exc:
            return registry_error_response(exc, param="name")
        if not deleted:
            return error_response(404, f"vector store {name!r} has no document {doc_id!r}", "id", "not_found")
        return json_response({"deleted": True, "id": doc_id})

    @route("GET", "/v1/vector_stores/{name}/stats")
    async def http_store_stats(self, name: str) -> Response:
        try:
            route = await self.core.route(VS, name)
            stats = await self.core.call(VS, name, "get_stats", [])
            recorded = await self.core.invoke(route, "get_embedding_space")
            embedder = route.spec.embedder
            serving = await embedding_space(self.core, embedder) if embedder else None
        except Exception as exc:
            return registry_error_response(exc, param="name")
        return json_response({**stats, "name": name, "embedder": embedder, "embedding_space": recorded,
                              "embedder_space": serving,
                              "space_mismatch": bool(serving and space_differs(recorded, serving))})
