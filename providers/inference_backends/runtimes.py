"""An exported graph in ONNX Runtime or OpenVINO, its thread count set where each runtime reads it.

Threads: torch's ``set_num_threads`` binds only the calling thread (the
embedder learned that the hard way); these runtimes take theirs when the
session is made, not from the environment: ONNX Runtime from
``SessionOptions.intra_op_num_threads`` (its default is every core, not
``OMP_NUM_THREADS``), OpenVINO from the compile option
``INFERENCE_NUM_THREADS``. The count is the config's ``num_threads``, else
``OMP_NUM_THREADS`` (which Ray sets to the replica's ``num_cpus``), else every
core.

OpenVINO's precision is set explicitly: left alone it picks bfloat16 on a CPU
with AMX (this machine: ``INFERENCE_PRECISION_HINT`` read back as bf16 with no
option given), which is faster but not the fp32 the name suggests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from providers.errors import ProviderLoadError
from providers.inference_backends import CPU_FAST_EXTRA

OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}


class Runtime(Protocol):
    input_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


def thread_count(configured: int | None) -> int:
    if configured:
        return configured
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return os.cpu_count() or 1


def require(package: str, backend: str) -> Any:
    """Import a runtime package, or fail naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise ProviderLoadError(
            f"backend {backend!r} needs the package {package!r}, which is not installed: {CPU_FAST_EXTRA}"
        ) from exc


class OnnxRuntimeSession:
    def __init__(self, graph: Path, threads: int) -> None:
        ort = require("onnxruntime", "onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # one graph at a time (the provider's owner thread)
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.threads = threads
        self.version = ort.__version__

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, feeds)[0]

    def describe(self) -> dict[str, Any]:
        return {"runtime": f"onnxruntime {self.version}", "threads": self.session.get_session_options().intra_op_num_threads}


class OpenVinoModel:
    def __init__(self, graph: Path, threads: int, precision: str) -> None:
        ov = require("openvino", "openvino")
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(graph)), "CPU", config={
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
            "PERFORMANCE_HINT": "LATENCY",  # one stream: calls come one at a time from the owner thread
        })
        self.request = self.compiled.create_infer_request()
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.version = ov.get_version()

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        self.request.infer(feeds)
        return self.request.get_output_tensor(0).data.copy()  # the request reuses its buffer

    def describe(self) -> dict[str, Any]:
        return {"runtime": f"openvino {self.version}",
                "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
                # what the CPU plugin chose: bf16 asked of a CPU without bfloat16 units reads back f32
                "precision": self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()}


def open_runtime(backend: str, graph: Path, threads: int, precision: str = "fp32") -> Runtime:
    try:
        if backend == "onnx":
            return OnnxRuntimeSession(graph, threads)
        if backend == "openvino":
            return OpenVinoModel(graph, threads, precision)
    except ProviderLoadError:
        raise
    except Exception as exc:
        raise ProviderLoadError(f"cannot load the graph {str(graph)!r} into {backend}: {type(exc).__name__}: {exc}") from exc
    raise ValueError(f"no runtime for backend {backend!r}")
