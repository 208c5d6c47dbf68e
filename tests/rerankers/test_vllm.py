"""The vLLM providers without vLLM: config parsing, engine arguments, and the
clear error when the GPU extra is not installed. The engines themselves run
in ``benchmarks/gpu_check.py --vllm-model PATH`` on a GPU machine."""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

import pytest

from providers._vllm import call_kwargs, engine_kwargs
from providers.config_base import parse_provider_config
from providers.embeddings.vllm import VLLMEmbeddingConfig, VLLMEmbeddingProvider
from providers.errors import ConfigError, ProviderLoadError
from providers.rerankers.vllm import VLLMReranker, VLLMRerankerConfig

no_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")


@no_vllm
async def test_reranker_without_vllm_says_how_to_install() -> None:
    with pytest.raises(ProviderLoadError, match=r"pip install '\.\[gpu\]'"):
        await VLLMReranker().initialize({"model": "BAAI/bge-reranker-v2-m3"})


@no_vllm
async def test_embedder_without_vllm_says_how_to_install() -> None:
    with pytest.raises(ProviderLoadError, match=r"pip install '\.\[gpu\]'"):
        await VLLMEmbeddingProvider().initialize({"model": "BAAI/bge-m3"})


async def test_config_is_checked_before_the_import() -> None:
    with pytest.raises(ConfigError, match="model"):
        await VLLMReranker().initialize({})
    with pytest.raises(ConfigError, match="gpu_memory_utilization"):
        await VLLMEmbeddingProvider().initialize({"model": "m", "gpu_memory_utilization": 1.5})


def test_reranker_config_defaults_and_shared_keys() -> None:
    s = parse_provider_config(VLLMRerankerConfig, {"model": "m"})
    assert (s.gpu_memory_utilization, s.dtype, s.max_model_len, s.tensor_parallel_size) == (0.9, "auto", None, 1)
    assert s.normalization == "none"  # vLLM applies the cross-encoder's sigmoid itself
    assert (s.max_candidates, s.fusion_weight) == (1000, 0.7)
    s = parse_provider_config(VLLMRerankerConfig, {"model": "m", "max_candidates": 50, "dtype": "bfloat16",
                                                   "max_model_len": 512, "tensor_parallel_size": 2})
    assert (s.max_candidates, s.dtype, s.max_model_len, s.tensor_parallel_size) == (50, "bfloat16", 512, 2)


@pytest.mark.parametrize("config", [{"model": ""}, {"model": "m", "dtype": "int3"},
                                    {"model": "m", "tensor_parallel_size": 0}, {"model": "m", "max_model_len": 0},
                                    {"model": "m", "gpu_memory_utilization": 0}, {"model": "m", "tempo": 1}])
def test_bad_configs(config: dict[str, Any]) -> None:
    for model in (VLLMRerankerConfig, VLLMEmbeddingConfig):
        with pytest.raises(ConfigError, match="config"):
            parse_provider_config(model, config)


def test_embedding_config_defaults() -> None:
    s = parse_provider_config(VLLMEmbeddingConfig, {"model": "m", "query_prefix": "query: "})
    assert s.normalize_embeddings is True and s.query_prefix == "query: " and s.document_prefix == ""
    assert VLLMEmbeddingProvider().get_model_name() == "unloaded"
    assert VLLMEmbeddingProvider().supports_gpu() is True


class _EngineArgsOld:  # vLLM <= 0.9: a pooling model is chosen by task
    def __init__(self, model: str, task: str = "auto") -> None: ...


class _EngineArgsNew:  # vLLM >= 0.10: by runner
    def __init__(self, model: str, runner: str = "auto", convert: str = "auto") -> None: ...


class _FakeVLLM:
    def __init__(self, engine_args: type) -> None:
        self.EngineArgs = engine_args


def test_engine_kwargs_follow_the_installed_vllm() -> None:
    s = parse_provider_config(VLLMRerankerConfig, {"model": "m", "max_model_len": 512,
                                                   "gpu_memory_utilization": 0.4})
    old = engine_kwargs(_FakeVLLM(_EngineArgsOld), s, "score")
    assert old["task"] == "score" and "runner" not in old
    new = engine_kwargs(_FakeVLLM(_EngineArgsNew), s, "score")
    assert new["runner"] == "pooling" and "task" not in new
    assert (new["model"], new["max_model_len"], new["gpu_memory_utilization"]) == ("m", 512, 0.4)
    e = parse_provider_config(VLLMEmbeddingConfig, {"model": "m"})
    assert engine_kwargs(_FakeVLLM(_EngineArgsOld), e, "embed")["task"] == "embed"
    assert "max_model_len" not in engine_kwargs(_FakeVLLM(_EngineArgsOld), e, "embed")
    assert call_kwargs(e) == {"use_tqdm": False}
    assert call_kwargs(parse_provider_config(VLLMEmbeddingConfig, {"model": "m", "truncate_prompt_tokens": 256})) \
        == {"use_tqdm": False, "truncate_prompt_tokens": 256}
    assert "runner" in inspect.signature(_EngineArgsNew).parameters  # what engine_kwargs inspects


def test_importing_the_modules_does_not_import_vllm() -> None:
    import importlib
    import sys

    for module in ("providers.embeddings.vllm", "providers.rerankers.vllm"):
        importlib.import_module(module)
    assert "vllm" not in sys.modules or importlib.util.find_spec("vllm") is not None
