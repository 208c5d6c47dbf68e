"""Embeddings from Cohere's ``POST /v2/embed`` (or ``/v1/embed``), or any server that speaks it.

Cohere's own API, or this registry's Cohere-shaped endpoints. Documents are
sent with ``input_type: search_document`` and queries with
``search_query`` (Cohere's v3+ models embed the two differently; the keys
below change them). Texts go in batches of at most ``batch_size`` (96 is
Cohere's limit per call). Vectors come as float lists by default, or as
base64 float32 (``embedding_type: base64``: a quarter of the JSON).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from providers._cohere import CohereConnectionConfig, CohereHTTP, malformed
from providers.config_base import parse_provider_config
from providers.embeddings.base import EmbeddingProviderBase, decode_vector
from providers.errors import ProviderCallError, not_initialized

OWNER = "Cohere embedder"
INPUT_TYPES = Literal["search_document", "search_query", "classification", "clustering"]


class CohereEmbedConfig(CohereConnectionConfig):
    dimension: int | None = Field(None, ge=1, description="Vector length; probed at start when unset.")
    batch_size: int = Field(96, ge=1, description="Most texts in one HTTP request (Cohere allows 96).")
    embedding_type: Literal["float", "base64"] = Field("float", description="Wire format of vectors.")
    document_input_type: INPUT_TYPES = Field("search_document", description="input_type sent by embed_texts.")
    query_input_type: INPUT_TYPES = Field("search_query", description="input_type sent by embed_query.")
    truncate: Literal["NONE", "START", "END"] | None = Field(
        None, description="Cohere's handling of over-long inputs; unset: the server's default.")
    supports_gpu: bool = Field(False, description="Reported by supports_gpu() (the server's GPU).")


class CohereEmbedder(EmbeddingProviderBase):
    """An `EmbeddingProvider` over Cohere's embed API; one HTTP pool per replica."""

    def __init__(self) -> None:
        self.settings: CohereEmbedConfig | None = None
        self.http: CohereHTTP | None = None
        self._dimension = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        s = self.settings
        return f"CohereEmbedder(model={s.model!r}, base_url={s.base_url!r})" if s else "CohereEmbedder()"

    async def initialize(self, config: dict[str, Any]) -> None:
        s = self.settings = parse_provider_config(CohereEmbedConfig, config)
        self.http = CohereHTTP(OWNER, s)
        self._dimension = s.dimension or len(await self.embed_query("dimension probe"))

    async def embed_texts(self, texts: list[str], batch_size: int | None = None) -> list[np.ndarray]:
        s = self._require()
        step = batch_size or s.batch_size
        out: list[np.ndarray] = []
        for i in range(0, len(texts), step):
            out.extend(await self._embed(texts[i : i + step], s.document_input_type))
        return out

    async def embed_query(self, query: str) -> np.ndarray:
        return (await self._embed([query], self._require().query_input_type))[0]

    async def _embed(self, texts: list[str], input_type: str) -> list[np.ndarray]:
        s = self._require()
        assert self.http is not None
        body = embed_request(s, texts, input_type)
        vectors = decode_embeddings(await self.http.post("embed", body), len(texts), s.embedding_type)
        if self._dimension and vectors[0].size != self._dimension:
            raise ProviderCallError(f"{OWNER}: model {s.model!r} returned {vectors[0].size}-d vectors; "
                                    f"{self._dimension} expected (config.dimension or the start probe)")
        return vectors

    def _require(self) -> CohereEmbedConfig:
        if self.settings is None:
            raise not_initialized(OWNER)
        return self.settings

    def get_dimension(self) -> int:
        return self._dimension

    def supports_gpu(self) -> bool:
        return bool(self.settings and self.settings.supports_gpu)

    def get_model_name(self) -> str:
        return self.settings.model if self.settings else "unknown"

    def _health_details(self) -> dict[str, Any]:
        s = self.settings
        return {"base_url": s.base_url if s else None, "api_version": s.api_version if s else None}

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()


def embed_request(settings: CohereEmbedConfig, texts: list[str], input_type: str) -> dict[str, Any]:
    """The JSON body of one embed call (the same keys in v1 and v2)."""
    body: dict[str, Any] = {"model": settings.model, "texts": texts, "input_type": input_type,
                            "embedding_types": [settings.embedding_type]}
    if settings.truncate is not None:
        body["truncate"] = settings.truncate
    return body


def decode_embeddings(body: Any, expected: int, embedding_type: str = "float") -> list[np.ndarray]:
    """Vectors from an embed answer: v2's and v1's ``{"float": [...]}`` (or ``"base64"``),
    or v1's plain list (``embeddings_floats``). A wrong count, ragged or empty
    vectors, or NaN is a failing server, not data."""
    try:
        raw = body["embeddings"]
        rows = raw if isinstance(raw, list) else raw[embedding_type]
        if not isinstance(rows, list):
            raise TypeError(f"embeddings must be a list, got {type(rows).__name__}")
        if len(rows) != expected:
            raise ValueError(f"{len(rows)} vectors for {expected} texts")
        vectors = [decode_vector(r) for r in rows]
        if len({v.shape for v in vectors}) > 1:
            raise ValueError("vectors of different lengths")
    except (KeyError, TypeError, ValueError) as exc:
        raise malformed(OWNER, exc) from exc
    return vectors

