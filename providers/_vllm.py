"""vLLM's offline engine as both vLLM providers start it (the embedder in
`providers.embeddings.vllm`, the reranker in `providers.rerankers.vllm`):
the engine's config keys, the import, and the engine's arguments.

vLLM is an optional dependency (``pip install '.[gpu]'``) that needs a GPU:
it is imported only when a vLLM provider starts, never by the rest of the
registry.

vLLM renamed how a pooling model is asked for: ``task="embed"`` /
``task="score"`` up to 0.9, ``runner="pooling"`` from 0.10 (the model's
architecture then decides embed vs. classify/score). `engine_kwargs` asks
``EngineArgs`` which one it takes, so both lines of releases work.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

from pydantic import Field

from providers.config_base import ProviderConfig
from providers.errors import ProviderLoadError

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
