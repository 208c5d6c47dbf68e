"""The memory tools: ``memory.store`` and ``memory.search``, composed entirely
through the registry.

Each dependency is named in the tool's config and reached through
``self.registry`` (`providers.registry.dependencies`): on Ray Serve every
call goes through the router, so it gets deadlines, fallback chains and
breakers, and the router's embedding cache, like any other caller. They are
resolved on first use, not in ``initialize``, so a tool can start before
the providers it composes (a Serve config deploys everything at once).

``memory.store``: embed the content (one batched call) -> upsert into the
vector store -> with a graph manager configured, record the supplied
entities and relationships as an episode.

``memory.search``: embed the query -> vector or hybrid search for
``candidates`` hits -> rerank them (when a reranker is configured) -> the
``top_k`` best with their scores and provenance.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from pydantic import Field

from providers.config_base import NAME_PATTERN, ProviderConfig, parse_provider_config
from providers.errors import InvalidRequestError
from providers.idempotency import write_id
from providers.interfaces.rerankers import RerankCandidate
from providers.interfaces.tools import Tool
from providers.interfaces.vector_stores import VectorDocument
from providers.registry.dependencies import resolver_of
from providers.types import ProviderType

MAX_MEMORIES_PER_CALL = 256


class MemoryToolConfig(ProviderConfig):
    vector_store: str = Field(..., pattern=NAME_PATTERN, description="Vector store holding the memories.")
    embedder: str = Field(..., pattern=NAME_PATTERN,
                          description="Embeddings provider; the store's own embedder (the guard refuses another).")
    reranker: str | None = Field(None, pattern=NAME_PATTERN, description="memory.search: reranker of the candidates.")
    graph_manager: str | None = Field(None, pattern=NAME_PATTERN,
                                      description="memory.store: graph manager recording entities and relationships.")
    default_top_k: int = Field(5, ge=1, le=100)
    candidates: int = Field(20, ge=1, le=1000, description="memory.search: hits fetched before reranking.")


class _MemoryTool(Tool):
    name = ""
    description = ""

    def __init__(self) -> None:
        self.cfg: MemoryToolConfig | None = None
        self._deps: dict[str, Any] = {}

    async def initialize(self, config: dict[str, Any]) -> None:
        self.cfg = parse_provider_config(MemoryToolConfig, config)

    async def _dep(self, ptype: ProviderType, name: str) -> Any:
        """The dependency's proxy, with its fallback chain; looked up once."""
        key = f"{ptype.value}/{name}"
        if key not in self._deps:
            registry = resolver_of(self, f"{ptype.value} provider {name!r}")
            self._deps[key] = await registry.get_provider_with_fallback(ptype, name)
        return self._deps[key]

    def get_name(self) -> str:
        return self.name

    def get_description(self) -> str:
        return self.description

    async def health_check(self) -> dict[str, Any]:
        """The tool's own state only. Its dependencies have their own health checks
        (the registry watches them); calling them here would make this tool's
        replica fail Serve's check, and be restarted, whenever one of them is
        down or not yet started, which helps no one."""
        if self.cfg is None:
            return {"status": "unhealthy", "tool": self.name, "error": "not initialized"}
        deps = {"vector_store": self.cfg.vector_store, "embedder": self.cfg.embedder,
                "reranker": self.cfg.reranker, "graph_manager": self.cfg.graph_manager}
        return {"status": "healthy", "tool": self.name, "dependencies": {k: v for k, v in deps.items() if v}}


class MemoryStoreTool(_MemoryTool):
    name = "memory.store"
    description = ("Store memories (texts with optional metadata): embedded, written to the vector store, "
                   "and, given entities and relationships, recorded in the knowledge graph.")

    def get_input_schema(self) -> dict[str, Any]:
        memory = {
            "type": "object",
            "properties": {
                "content": {"type": "string", "minLength": 1, "maxLength": 100_000},
                "id": {"type": "string", "minLength": 1, "maxLength": 512},
                "metadata": {"type": "object"},
            },
            "required": ["content"],
            "additionalProperties": False,
        }
        return {
            "type": "object",
            "properties": {
                "memories": {"type": "array", "items": memory, "minItems": 1, "maxItems": MAX_MEMORIES_PER_CALL},
                "source": {"type": "string", "maxLength": 200, "description": "Where the memories came from."},
                # The registry's HTTP route fills it from x-request-id (providers/idempotency.py).
                "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200,
                                    "description": "Memories without an id get ids derived from it: the same "
                                                   "call sent again stores them once."},
                # Checked here, before anything is written: a bad entity must not
                # leave the memories stored and the episode missing.
                "entities": {"type": "array", "maxItems": 1000, "items": {
                    "type": "object", "required": ["name", "entity_type"],
                    "properties": {"name": {"type": "string", "minLength": 1},
                                   "entity_type": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,62}$"},
                                   "properties": {"type": "object"}, "id": {"type": "string"},
                                   "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
                    "additionalProperties": False},
                    "description": "Extracted entities, recorded through the graph manager."},
                "relationships": {"type": "array", "maxItems": 1000, "items": {
                    "type": "object", "required": ["source", "target", "type"],
                    "properties": {"source": {"type": "string", "minLength": 1},
                                   "target": {"type": "string", "minLength": 1},
                                   "type": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,62}$"},
                                   "properties": {"type": "object"},
                                   "valid_from": {"type": "string"}, "valid_to": {"type": "string"}},
                    "additionalProperties": False}},
            },
            "required": ["memories"],
            "additionalProperties": False,
        }

    async def invoke(self, arguments: dict[str, Any]) -> Any:
        cfg = self.cfg
        memories = arguments["memories"]
        source = arguments.get("source")
        if (arguments.get("entities") or arguments.get("relationships")) and not cfg.graph_manager:
            raise InvalidRequestError("this memory.store has no graph_manager configured", "entities")
        embedder = await self._dep(ProviderType.EMBEDDING, cfg.embedder)
        store = await self._dep(ProviderType.VECTOR_STORE, cfg.vector_store)
        try:
            vectors = await embedder.embed_texts([m["content"] for m in memories])
        except InvalidRequestError as exc:  # the caller sent memories, not texts: name what they sent
            raise as_memories_error(exc) from None
        now = datetime.now(timezone.utc)
        key = arguments.get("idempotency_key")
        docs = [VectorDocument(id=m.get("id") or write_id(key, "memory.store", i, m["content"]), content=m["content"],
                               embedding=v, metadata={**m.get("metadata", {}), **({"source": source} if source else {})},
                               created_at=now)
                for i, (m, v) in enumerate(zip(memories, vectors))]
        ids = await store.store_documents(docs)
        result: dict[str, Any] = {"ids": ids, "stored": len(ids), "vector_store": cfg.vector_store}
        if arguments.get("entities") or arguments.get("relationships"):
            manager = await self._dep(ProviderType.GRAPH_MANAGER, cfg.graph_manager)
            result["episode"] = asdict(await manager.add_episode(
                "\n".join(m["content"] for m in memories), now, arguments.get("entities", []),
                arguments.get("relationships", []), source or "memory.store"))  # a tool's result is JSON
        return result


class MemorySearchTool(_MemoryTool):
    name = "memory.search"
    description = ("Search memories by meaning: the query is embedded, the vector store searched (optionally "
                   "hybrid with full text), the candidates reranked; returns the best with scores and provenance.")

    def get_input_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 10_000},
                "top_k": {"type": "integer", "minimum": 1, "maximum": 100},
                "filters": {"type": "object", "description": "Metadata filters (see the vector store)."},
                "hybrid": {"type": "boolean", "description": "Fuse full-text relevance with vector similarity."},
                "rerank": {"type": "boolean", "description": "Rerank the candidates (default: when configured)."},
                "candidates": {"type": "integer", "minimum": 1, "maximum": 1000},
            },
            "required": ["query"],
            "additionalProperties": False,
        }

    async def invoke(self, arguments: dict[str, Any]) -> Any:
        cfg = self.cfg
        query = arguments["query"]
        top_k = arguments.get("top_k", cfg.default_top_k)
        rerank = arguments.get("rerank", cfg.reranker is not None)
        if rerank and not cfg.reranker:
            raise InvalidRequestError("this memory.search has no reranker configured", "rerank")
        pool = max(arguments.get("candidates", cfg.candidates), top_k)
        embedder = await self._dep(ProviderType.EMBEDDING, cfg.embedder)
        store = await self._dep(ProviderType.VECTOR_STORE, cfg.vector_store)
        vector = await embedder.embed_query(query)
        if arguments.get("hybrid"):
            hits = await store.hybrid_search(vector, query, top_k=pool, filters=arguments.get("filters"))
        else:
            hits = await store.search_similar(vector, top_k=pool, filters=arguments.get("filters"))
        results = [{"id": h.id, "content": h.content, "score": h.score, "vector_score": h.score,
                    "metadata": h.metadata} for h in hits]
        if rerank and hits:
            reranker = await self._dep(ProviderType.RERANKER, cfg.reranker)
            ranked = await reranker.rerank(query, [RerankCandidate(id=h.id, content=h.content, original_score=h.score,
                                                                   metadata=h.metadata) for h in hits], top_k=top_k)
            by_id = {r["id"]: r for r in results}
            results = [{**by_id[r.id], "score": r.final_score, "rerank_score": r.rerank_score} for r in ranked]
        for r in results[:top_k]:
            r["provenance"] = {"vector_store": cfg.vector_store, "source": r["metadata"].get("source"),
                               "reranker": cfg.reranker if rerank else None}
        return {"query": query, "results": results[:top_k], "candidates": len(hits), "reranked": bool(rerank and hits)}


def as_memories_error(exc: InvalidRequestError) -> InvalidRequestError:
    """An embedder's refusal of ``texts`` / ``texts[i]`` as one of ``memories`` / ``memories[i].content``."""
    field = exc.field or ""
    match = re.fullmatch(r"texts(\[\d+\])?", field)
    if match is None:
        return exc
    message = str(exc).split(": ", 1)[1] if str(exc).startswith(field + ": ") else str(exc)
    renamed = f"memories{match.group(1)}.content" if match.group(1) else "memories"
    try:
        return type(exc)(message, renamed)  # keeps the kind (and so the HTTP status)
    except TypeError:
        return InvalidRequestError(message, renamed)
