"""Reranking with a cross-encoder run by vLLM's offline engine (``LLM.score``).

For large rerankers (bge-reranker-v2-m3, Qwen3-Reranker ...) on a GPU. vLLM
is optional (``pip install '.[gpu]'``) and imported only when this provider
starts; the engine keys and the import are shared with the vLLM embedder
(`providers._vllm`).

``normalization`` defaults to "none": for a one-label cross-encoder vLLM's
score already applies the classifier's activation (a sigmoid), so scores are
0..1 as they come. An embedding model given here is scored by cosine
similarity, which vLLM does itself.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from providers._vllm import VLLMEngineConfig, call_kwargs, engine_kwargs, import_vllm
from providers.config_base import parse_provider_config
from providers.errors import ProviderCallError, ProviderLoadError, not_initialized
from providers.owner_thread import OwnerThread
from providers.rerankers.common import RerankerBase, RerankerConfig

OWNER = "vLLM reranker"


class VLLMRerankerConfig(VLLMEngineConfig, RerankerConfig):
    normalization: Literal["none", "sigmoid", "minmax"] = Field(
        "none", description="vLLM already maps a cross-encoder's logit to 0..1.")


class VLLMReranker(RerankerBase):
    def __init__(self) -> None:
        super().__init__()
        self.llm: Any = None
        self._thread = OwnerThread(OWNER, thread_name="vllm-rerank")  # the offline engine is not thread-safe

    async def initialize(self, config: dict[str, Any]) -> None:
        self.settings = parse_provider_config(VLLMRerankerConfig, config)
        self._thread.start()
        await self._thread.run(self._load)

    def _load(self) -> None:
        vllm = import_vllm()
        s: VLLMRerankerConfig = self.settings  # type: ignore[assignment]
        try:
            self.llm = vllm.LLM(**engine_kwargs(vllm, s, "score"))
        except Exception as exc:
            raise ProviderLoadError(f"vLLM cannot load {s.model!r} for scoring: {exc}") from exc

    async def _score(self, query: str, documents: list[str]) -> list[float]:
        return await self._thread.run(self.predict, query, documents)

    def predict(self, query: str, documents: list[str]) -> list[float]:
        """Blocking: one score per document, in input order (1 -> N scoring)."""
        if self.llm is None:
            raise not_initialized(OWNER)
        try:
            outputs = self.llm.score(query, documents, **call_kwargs(self.settings))  # type: ignore[arg-type]
        except Exception as exc:
            raise ProviderCallError(f"vLLM score failed: {type(exc).__name__}: {exc}") from exc
        return [float(o.outputs.score) for o in outputs]

    def get_reranker_type(self) -> str:
        return "vllm"

    def supports_batch_reranking(self) -> bool:
        return True  # vLLM schedules all pairs of a call as one batch

    def _health_details(self) -> dict[str, Any]:
        return {"model_name": getattr(self.settings, "model", None), "model_loaded": self.llm is not None,
                "backend": "vllm"}

    async def close(self) -> None:
        self.llm = None
        await self._thread.close()
