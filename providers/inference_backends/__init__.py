"""CPU inference backends for the sentence-transformers providers: ONNX Runtime and OpenVINO.

The embedder (`providers.embeddings.sentence_transformers`) and the
cross-encoder reranker (`providers.rerankers.cross_encoder`) load their model
with sentence-transformers (torch) as always; with ``backend: onnx`` or
``backend: openvino`` the heavy part, the forward pass, runs instead in an
ONNX graph exported from that same torch model. Once that graph is cached,
the embedder loads without torch at all (light_text.py):

    export_cache.py    where exported graphs live, their key, the atomic publish
    onnx_export.py     torch -> ONNX (and int8 by ONNX Runtime's dynamic quantization),
                       checked against torch before it is published
    runtimes.py        an ONNX Runtime session or an OpenVINO compiled model, threads set
    exported_model.py  the model's own tokenization + a runtime, in batches
    light_text.py      the embedder's torch-free warm path: the model directory's files, tokenizer.json

Why not optimum (what sentence-transformers' own ``backend="onnx"`` needs):
optimum 2.1 pins transformers<5, and installing it downgraded transformers
5.25 -> 4.57 and sentence-transformers 6.3 -> 5.7 (dry run, 2026-12). The
exporter here is torch's own, so the extra is only the runtimes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from providers.errors import ConfigError

CPU_FAST_EXTRA = "pip install 'provider-registry[cpu-fast]'"
Backend = Literal["torch", "onnx", "openvino"]


class BackendFields(BaseModel):
    """The ``config:`` keys that choose and tune the backend (shared by the embedder and the cross-encoder)."""

    backend: Backend = Field(
        "torch",
        description="Where the forward pass runs: torch, onnx (ONNX Runtime) or openvino. onnx and openvino "
        "run a graph exported from the model on first load and cached on disk (needs the cpu-fast extra).")
    quantize: Literal["none", "dynamic"] = Field(
        "none",
        description="'dynamic': int8 weights by ONNX Runtime's dynamic quantization (backend onnx only); "
        "a separate cached graph. Measured on all-MiniLM-L6-v2: STS-B Spearman 81.80 vs 82.03.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="OpenVINO's inference precision (backend openvino only). bf16 uses the CPU's bfloat16 "
        "units (AMX, AVX512-BF16) where it has them and runs fp32 where it has none.")
    streams: int = Field(
        1, ge=1, le=16,
        description="backend onnx/openvino: forward passes that run at once, each on its share of the threads "
        "(OpenVINO's NUM_STREAMS; concurrent ONNX Runtime runs); a call's batches are spread over them. At most "
        "the thread count. Measured on 2 cores (OpenVINO bf16, MiniLM, batches of 32): 2 streams of one thread "
        "2,635 texts/s against 2,086 for one stream of two threads, which wait for each other at every layer.")
    export_cache_dir: str | None = Field(
        None,
        description="Where exported graphs are cached; default: beside the model's directory, or "
        "$XDG_CACHE_HOME/provider-registry/exports where that is not writable.")

    @model_validator(mode="after")
    def _backend_options_fit(self) -> BackendFields:
        if self.quantize != "none" and self.backend != "onnx":
            raise ConfigError(
                f"quantize: {self.quantize} is ONNX Runtime's dynamic quantization and needs backend: onnx "
                f"(got backend: {self.backend}); for OpenVINO, precision: bf16 is the faster option", "config.quantize")
        if self.streams > 1 and self.backend == "torch":
            raise ConfigError("streams runs an exported graph's forward passes side by side and needs backend: "
                              "onnx or openvino (got backend: torch)", "config.streams")
        if self.precision != "fp32" and self.backend != "openvino":
            raise ConfigError(
                f"precision: {self.precision} is OpenVINO's inference precision and needs backend: openvino "
                f"(got backend: {self.backend})", "config.precision")
        return self
