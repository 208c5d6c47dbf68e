"""Embeddings from a model run by vLLM's offline engine (``LLM.embed``), in process.

vLLM is an optional dependency (``pip install '.[gpu]'``) that needs a GPU:
it is imported only when a vLLM provider starts, never by the rest of the
registry. The engine pieces shared with the vLLM reranker
(`providers.rerankers.vllm`) live here: config keys, the import, and the
engine arguments.

vLLM renamed how a pooling model is asked for: ``task="embed"`` /
``task="score"`` up to 0.9, ``runner="pooling"`` from 0.10 (the model's
architecture then decides embed vs. classify/score). `engine_kwargs` asks
``EngineArgs`` which one it takes, so both lines of releases work.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from pydantic import Field

from providers.errors import ProviderCallError, ProviderLoadError
from providers.interfaces.embeddings import EmbeddingProvider
from providers.config_base import ProviderConfig, parse_provider_config

INSTALL_HINT = "vLLM is not installed; install the GPU extra: pip install '.[gpu]'"


class VLLMEngineConfig(ProviderConfig):
    """Keys of vLLM's engine that both vLLM providers take."""

    model: str = Field(..., min_length=1, description="Hub id or local directory of the model.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1,
        description="Share of the GPU's memory vLLM may take; lower it when the GPU is shared "
        "(e.g. a deployment with num_gpus 0.5).")
    dtype: Literal["auto", "float16", "bfloat16", "float32", "half", "float"] = Field(
        "auto", description="Weights and activations dtype.")
    max_model_len: int | None = Field(None, ge=1, description="Longest input in tokens; default: the model's.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one model is split over.")
    enforce_eager: bool = Field(
        True, description="Skip CUDA-graph capture: faster start, and a pooling model's single "
        "forward pass gains little from graphs.")
    truncate_prompt_tokens: int | None = Field(
        None, ge=1, description="Cut each input to this many tokens instead of failing on long text.")
    trust_remote_code: bool = Field(False, description="Allow model repos to run their own code.")


def import_vllm() -> Any:
    """The ``vllm`` module, or a `ProviderLoadError` that says how to install it."""
    try:
        import vllm
    except ImportError as exc:
        raise ProviderLoadError(f"{INSTALL_HINT} ({exc})") from exc
    return vllm


def engine_kwargs(vllm: Any, settings: VLLMEngineConfig, task: Literal["embed", "score"]) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM`` for a pooling model doing ``task``."""
    kwargs: dict[str, Any] = {
        "model": settings.model,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "dtype": settings.dtype,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "enforce_eager": settings.enforce_eager,
        "trust_remote_code": settings.trust_remote_code,
    }
    if settings.max_model_len is not None:
        kwargs["max_model_len"] = settings.max_model_len
    params = inspect.signature(vllm.EngineArgs).parameters
    if "runner" in params:  # vLLM >= 0.10
        kwargs["runner"] = "pooling"
    else:
        kwargs["task"] = task
    return kwargs


def call_kwargs(settings: VLLMEngineConfig) -> dict[str, Any]:
    """Keyword arguments of ``LLM.embed`` / ``LLM.score``."""
    kwargs: dict[str, Any] = {"use_tqdm": False}
    if settings.truncate_prompt_tokens is not None:
        kwargs["truncate_prompt_tokens"] = settings.truncate_prompt_tokens
    return kwargs


class VLLMEmbeddingConfig(VLLMEngineConfig):
    normalize_embeddings: bool = Field(True, description="Unit-length vectors (cosine = dot).")
    query_prefix: str = Field("", description="Prepended to queries, e.g. 'query: ' for e5.")
    document_prefix: str = Field("", description="Prepended to documents, e.g. 'passage: ' for e5.")


class VLLMEmbeddingProvider(EmbeddingProvider):
    def __init__(self) -> None:
        self.settings: VLLMEmbeddingConfig | None = None
        self.llm: Any = None
        self._dimension = 0
        self.last_error: str | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def initialize(self, config: dict[str, Any]) -> None:
        self.settings = parse_provider_config(VLLMEmbeddingConfig, config)
        # The offline engine is not thread-safe: one thread owns it, and the
        # event loop stays free while it runs.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-embed")
        await self._run(self._load)

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._executor is None:
            raise RuntimeError("provider not initialized")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

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
            raise RuntimeError("provider not initialized")
        return self.settings

    def encode(self, texts: list[str], prefix: str = "") -> np.ndarray:
        """Blocking embed to a float32 matrix (one row per text)."""
        s = self._require()
        if self.llm is None:
            raise RuntimeError("provider not initialized")
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
        return list(await self._run(self.encode, list(texts), self._require().document_prefix))

    async def embed_query(self, query: str) -> np.ndarray:
        return (await self._run(self.encode, [query], self._require().query_prefix))[0]

    def get_dimension(self) -> int:
        return self._dimension

    def supports_gpu(self) -> bool:
        return True  # vLLM runs on GPUs only (its CPU build is not what '.[gpu]' installs)

    def get_model_name(self) -> str:
        return self.settings.model if self.settings else "unloaded"

    async def close(self) -> None:
        self.llm = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    async def health_check(self) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            vector = await self.embed_query("health check")
            ok = vector.shape == (self._dimension,) and bool(np.isfinite(vector).all())
            self.last_error = None if ok else "embedding has the wrong shape or non-finite values"
        except Exception as exc:  # health checks report, never raise
            ok, self.last_error = False, f"{type(exc).__name__}: {exc}"
        return {
            "status": "healthy" if ok else "unhealthy",
            "model_name": self.get_model_name(),
            "model_loaded": self.llm is not None,
            "backend": "vllm",
            "dimension": self._dimension,
            "gpu_available": True,
            "response_time": round(time.perf_counter() - start, 4),
            "last_error": self.last_error,
        }
