"""Embeddings from any server that speaks OpenAI's ``POST /v1/embeddings``.

OpenAI itself, vLLM, TEI, Ollama, LiteLLM, or this registry's own HTTP
endpoint. Vectors come back base64-encoded float32 by default (what the
official client asks for): a quarter of the JSON and no float parsing.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
import numpy as np
from pydantic import Field, SecretStr

from providers.config_base import ProviderConfig, parse_provider_config
from providers.embeddings.base import EmbeddingProviderBase, decode_vector
from providers.errors import ProviderCallError, not_initialized


class OpenAICompatibleConfig(ProviderConfig):
    base_url: str = Field(..., pattern=r"^https?://", description="Server root, e.g. http://host:8000/v1.")
    model: str = Field(..., min_length=1, description="Model name sent with each request.")
    api_key: SecretStr | None = Field(None, description="Bearer token; never logged.")
    dimension: int | None = Field(None, ge=1, description="Vector length; probed at start when unset.")
    batch_size: int = Field(256, ge=1, description="Most texts in one HTTP request.")
    timeout_s: float = Field(30.0, gt=0, description="HTTP timeout per request.")
    encoding_format: Literal["base64", "float"] = Field("base64", description="Wire format of vectors.")
    query_prefix: str = Field("", description="Prepended to queries.")
    document_prefix: str = Field("", description="Prepended to documents.")
    supports_gpu: bool = Field(False, description="Reported by supports_gpu() (the server's GPU).")
    max_connections: int = Field(64, ge=1, description="HTTP connection pool size.")


class OpenAICompatibleProvider(EmbeddingProviderBase):
    def __init__(self) -> None:
        self.settings: OpenAICompatibleConfig | None = None
        self.client: httpx.AsyncClient | None = None
        self._dimension = 0
        self.last_error: str | None = None

    async def initialize(self, config: dict[str, Any]) -> None:
        s = self.settings = parse_provider_config(OpenAICompatibleConfig, config)
        headers = {"Authorization": f"Bearer {s.api_key.get_secret_value()}"} if s.api_key else {}
        self.client = httpx.AsyncClient(
            base_url=s.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=s.timeout_s,
            limits=httpx.Limits(max_connections=s.max_connections),
        )
        self._dimension = s.dimension or len(await self.embed_query("dimension probe"))

    async def embed_texts(self, texts: list[str], batch_size: int | None = None) -> list[np.ndarray]:
        s = self._require()
        step = batch_size or s.batch_size
        out: list[np.ndarray] = []
        for i in range(0, len(texts), step):
            out.extend(await self._request([s.document_prefix + t for t in texts[i : i + step]]))
        return out

    async def embed_query(self, query: str) -> np.ndarray:
        s = self._require()
        return (await self._request([s.query_prefix + query]))[0]

    async def _request(self, inputs: list[str]) -> list[np.ndarray]:
        s = self._require()
        assert self.client is not None
        try:
            response = await self.client.post(
                "embeddings",
                json={"model": s.model, "input": inputs, "encoding_format": s.encoding_format},
            )
        except httpx.HTTPError as exc:
            raise ProviderCallError(f"embeddings server {s.base_url} unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ProviderCallError(
                f"embeddings server {s.base_url} answered {response.status_code}: {response.text[:300]}"
            )
        return _decode(response.json(), len(inputs))

    def _require(self) -> OpenAICompatibleConfig:
        if self.settings is None:
            raise not_initialized("OpenAI-compatible embedder")
        return self.settings

    def get_dimension(self) -> int:
        return self._dimension

    def supports_gpu(self) -> bool:
        return bool(self.settings and self.settings.supports_gpu)

    def get_model_name(self) -> str:
        return self.settings.model if self.settings else "unknown"

    def _health_details(self) -> dict[str, Any]:
        return {"base_url": self.settings.base_url if self.settings else None}

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def _decode(body: Any, expected: int) -> list[np.ndarray]:
    """Validate an embeddings response and return vectors in input order.

    A server that answers 200 with the wrong number of vectors, duplicate or
    missing indices, ragged or empty vectors, or NaN is failing, and is
    treated as such (so the fallback serves) instead of returning wrong data.
    """
    try:
        items = body["data"]
        if len(items) != expected:
            raise ProviderCallError(f"embeddings server returned {len(items)} vectors for {expected} inputs")
        if not all(isinstance(d["index"], int) for d in items):
            raise TypeError("index must be an integer")
        indices = sorted(d["index"] for d in items)
        if indices != list(range(expected)):
            raise ValueError(f"indices {indices[:8]}... do not cover 0..{expected - 1} once each")
        by_index = {int(d["index"]): d["embedding"] for d in items}
        vectors = [decode_vector(by_index[i]) for i in range(expected)]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderCallError(f"malformed embeddings response: {type(exc).__name__}: {exc}") from exc
    if len({v.shape for v in vectors}) > 1:
        raise ProviderCallError("malformed embeddings response: vectors of different lengths")
    return vectors

