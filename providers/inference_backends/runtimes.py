"""An exported graph in ONNX Runtime or OpenVINO, its thread count set where each runtime reads it.

Threads: torch's ``set_num_threads`` binds only the calling thread (the
embedder learned that the hard way); these runtimes take theirs when the
session is made, not from the environment: ONNX Runtime from
``SessionOptions.intra_op_num_threads`` (its default is every core, not
``OMP_NUM_THREADS``), OpenVINO from the compile option
``INFERENCE_NUM_THREADS``. The count is the config's ``num_threads``, else
``OMP_NUM_THREADS`` (which Ray sets to the replica's ``num_cpus``), else every
core.

Streams: ``run_stream`` may be called from up to ``streams`` threads at
once, the threads shared among them: OpenVINO compiles the graph a second
time with ``NUM_STREAMS`` and keeps one infer request per stream; ONNX
Runtime opens a second session whose runs (safe to overlap) take
``threads // streams`` intra-op threads. ``run``, a lone pass, keeps every
thread. Parallel streams beat one wide pass on few cores: a pass
split over two threads waits at every layer for the slower thread, which a
busy neighbour process preempts.

OpenVINO's precision is set explicitly: left alone it picks bfloat16 on a CPU
with AMX (this machine: ``INFERENCE_PRECISION_HINT`` read back as bf16 with no
option given), which is faster but not the fp32 the name suggests.
"""

from __future__ import annotations

import os
import queue
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from providers.errors import ProviderLoadError
from providers.inference_backends import CPU_FAST_EXTRA

OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}


class Runtime(Protocol):
    input_names: list[str]
    streams: int  # how many `run_stream` calls may go at once

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """A lone pass on every thread (one caller at a time)."""

    def run_stream(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """One of up to ``streams`` passes side by side, each on its share of the threads."""

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


def stream_count(threads: int, streams: int) -> int:
    """Streams share the threads: never more streams than threads."""
    return max(1, min(streams, threads))


class OnnxRuntimeSession:
    def __init__(self, graph: Path, threads: int, streams: int = 1) -> None:
        ort = require("onnxruntime", "onnx")
        self.streams = stream_count(threads, streams)

        def session(intra_op_threads: int) -> Any:
            options = ort.SessionOptions()
            options.intra_op_num_threads = intra_op_threads
            options.inter_op_num_threads = 1  # one node at a time within a run
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

        self.session = session(threads)  # a lone pass: every thread
        # Side by side: runs of one session may overlap, each on its share of the threads.
        self.stream_session = self.session if self.streams == 1 else session(max(1, threads // self.streams))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.threads = threads
        self.version = ort.__version__

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, feeds)[0]

    def run_stream(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.stream_session.run(None, feeds)[0]

    def describe(self) -> dict[str, Any]:
        return {"runtime": f"onnxruntime {self.version}",
                "threads": self.session.get_session_options().intra_op_num_threads, "streams": self.streams}


class OpenVinoModel:
    def __init__(self, graph: Path, threads: int, precision: str, streams: int = 1) -> None:
        ov = require("openvino", "openvino")
        core = ov.Core()
        model = core.read_model(str(graph))

        def compile_model(hint: dict[str, Any]) -> Any:
            return core.compile_model(model, "CPU", config={
                "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision], **hint})

        # A lone pass (one batch, a query): one stream with every thread. THROUGHPUT mode's
        # passes were slower on inputs of changing shape (a short text: 167-180/s against 243-262).
        self.compiled = compile_model({"PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()
        self.streams = 1
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        wanted = stream_count(threads, streams)
        if wanted > 1:  # side by side: THROUGHPUT with NUM_STREAMS splits the threads among them
            self.stream_compiled = compile_model({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": wanted})
            self.streams = int(self.stream_compiled.get_property("NUM_STREAMS"))
            for _ in range(self.streams):  # an infer request per stream (a request is not reentrant)
                self._idle.put(self.stream_compiled.create_infer_request())
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.version = ov.get_version()

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return _infer(self.request, feeds)

    def run_stream(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if self.streams == 1:
            return self.run(feeds)
        request = self._idle.get()
        try:
            return _infer(request, feeds)
        finally:
            self._idle.put(request)

    def describe(self) -> dict[str, Any]:
        return {"runtime": f"openvino {self.version}",
                "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")), "streams": self.streams,
                # what the CPU plugin chose: bf16 asked of a CPU without bfloat16 units reads back f32
                "precision": self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()}


def _infer(request: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    request.infer(feeds)
    return request.get_output_tensor(0).data.copy()  # the request reuses its buffer


def open_runtime(backend: str, graph: Path, threads: int, precision: str = "fp32", streams: int = 1) -> Runtime:
    try:
        if backend == "onnx":
            return OnnxRuntimeSession(graph, threads, streams)
        if backend == "openvino":
            return OpenVinoModel(graph, threads, precision, streams)
    except ProviderLoadError:
        raise
    except Exception as exc:
        raise ProviderLoadError(f"cannot load the graph {str(graph)!r} into {backend}: {type(exc).__name__}: {exc}") from exc
    raise ValueError(f"no runtime for backend {backend!r}")
