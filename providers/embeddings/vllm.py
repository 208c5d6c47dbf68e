"""Embeddings from a model run by vLLM's offline engine (``LLM.embed``), in process.

vLLM is an optional dependency (``pip install '.[gpu]'``) that needs a GPU: it
is imported only when this provider starts (`providers._vllm`, shared with the
vLLM reranker).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from providers._vllm import VLLMEngineConfig, call_kwargs, engine_kwargs, import_vllm
from providers.config_base import parse_provider_config
from providers.embeddings.base import EmbeddingProviderBase
from providers.errors import ProviderCallError, ProviderLoadError, not_initialized
from providers.owner_thread import OwnerThread

OWNER = "vLLM embedder"


class VLLMEmbeddingConfig(VLLMEngineConfig):
    normalize_embeddings: bool = Field(True, description="Unit-length vectors (cosine = dot).")
    query_prefix: str = Field("", description="Prepended to queries, e.g. 'query: ' for e5.")
    document_prefix: str = Field("", description="Prepended to documents, e.g. 'passage: ' for e5.")


class VLLMEmbeddingProvider(EmbeddingProviderBase):
    def __init__(self) -> None:
        self.settings: VLLMEmbeddingConfig | None = None
        self.llm: Any = None
        self._dimension = 0
        self.last_error: str | None = None
        # The offline engine is not thread-safe: one thread owns it, and the
        # event loop stays free while it runs.
        self._thread = OwnerThread(OWNER, thread_name="vllm-embed")

    async def initialize(self, config: dict[str, Any]) -> None:
        self.settings = parse_provider_config(VLLMEmbeddingConfig, config)
        self._thread.start()
        await self._thread.run(self._load)

    def _load(self) -> None:
        vllm = import_vllm()
        s = self._require()
        try:
            self.llm = vllm.LLM(**engine_kwargs(vllm, s, "embed"))
        except Exception as exc:
            raise ProviderLoadError(f"vLLM cannot load {s.model!r} for embeddings: {exc}") from exc
        self._dimension = int(self.encode(["dimension probe"]).shape[1])

    def _require(self) -> VLLMEmbeddingConfig:
        if self.settings is None:
            raise not_initialized(OWNER)
        return self.settings

    def encode(self, texts: list[str], prefix: str = "") -> np.ndarray:
        """Blocking embed to a float32 matrix (one row per text)."""
        s = self._require()
        if self.llm is None:
            raise not_initialized(OWNER)
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        try:
            outputs = self.llm.embed([prefix + t for t in texts], **call_kwargs(s))
        except Exception as exc:
            raise ProviderCallError(f"vLLM embed failed: {type(exc).__name__}: {exc}") from exc
        matrix = np.asarray([o.outputs.embedding for o in outputs], dtype=np.float32)
        if s.normalize_embeddings:
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = matrix / np.where(norms > 0, norms, 1.0)
        return matrix

    async def embed_texts(self, texts: list[str], batch_size: int | None = None) -> list[np.ndarray]:
        # batch_size is part of the interface; vLLM's scheduler forms its own
        # batches from everything it is given, so all texts go in one call.
        return list(await self._thread.run(self.encode, list(texts), self._require().document_prefix))

    async def embed_query(self, query: str) -> np.ndarray:
        return (await self._thread.run(self.encode, [query], self._require().query_prefix))[0]

    def get_dimension(self) -> int:
        return self._dimension

    def supports_gpu(self) -> bool:
        return True  # vLLM runs on GPUs only (its CPU build is not what '.[gpu]' installs)

    def get_model_name(self) -> str:
        return self.settings.model if self.settings else "unloaded"

    async def close(self) -> None:
        self.llm = None
        await self._thread.close()

    def _health_details(self) -> dict[str, Any]:
        return {"model_loaded": self.llm is not None, "backend": "vllm", "gpu_available": True}
