"""A loaded sentence-transformers model whose forward pass runs in ONNX Runtime or OpenVINO.

`ExportedModel.load` finds the model's graph in the export cache or exports
it (checked against torch, published atomically), then opens it in the
runtime; `forward` tokenizes with the model's own ``preprocess`` (so
truncation, pair encoding and special tokens are sentence-transformers' own)
and runs the graph in batches, longest inputs first as sentence-transformers
does, so a batch pads little.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from providers.errors import ProviderLoadError
from providers.inference_backends import BackendFields, export_cache
from providers.inference_backends.onnx_export import (
    ExportStepError,
    check_against_torch,
    export_graph,
    exporter_tag,
    quantize_dynamic,
)
from providers.inference_backends.runtimes import Runtime, open_runtime


def _length(item: Any) -> int:
    return sum(len(part) for part in item) if isinstance(item, (tuple, list)) else len(item)


class ExportedModel:
    def __init__(self, model: Any, runtime: Runtime, info: dict[str, Any]) -> None:
        self.model = model  # kept for its preprocess (the tokenizer) only
        self.runtime = runtime
        self.info = info

    @classmethod
    def load(cls, model: Any, *, label: str, model_dir: str | None, output: str, pairs: bool,
             settings: BackendFields, threads: int) -> ExportedModel:
        """``output``: the feature the graph returns (``sentence_embedding`` or ``scores``);
        ``pairs``: the model reads (query, document) pairs (a cross-encoder)."""
        started = time.perf_counter()
        backend = settings.backend
        try:
            root = export_cache.cache_root(model_dir, settings.export_cache_dir)
        except OSError as exc:
            raise ProviderLoadError(f"cannot cache the {backend} export of {label!r}: {exc}") from exc
        digest = export_cache.weights_digest(model.state_dict().items())
        tag = exporter_tag()

        def write_fp32(directory: Path) -> dict:
            meta = export_graph(model, output, pairs, directory)
            check = open_runtime(backend, directory / export_cache.GRAPH_FILE, threads)
            meta["check_max_abs_diff"] = check_against_torch(model, output, pairs, check.run)
            return meta

        try:
            graph, exported = export_cache.publish(
                root, export_cache.entry_key(label, digest, output, "fp32", tag), write_fp32)
            if settings.quantize == "dynamic":
                import onnxruntime

                fp32 = graph
                graph, quantized = export_cache.publish(
                    root, export_cache.entry_key(label, digest, output, "int8dyn", f"{tag}-ort-{onnxruntime.__version__}"),
                    lambda directory: quantize_dynamic(fp32, directory))
                exported = exported or quantized
        except ExportStepError as exc:
            raise ProviderLoadError(
                f"cannot export {label!r} for backend {backend!r}: the {exc.step!r} step failed: {exc}") from exc
        except OSError as exc:
            raise ProviderLoadError(f"cannot write the {backend} export of {label!r} under {str(root)!r}: {exc}") from exc
        runtime = open_runtime(backend, graph, threads, settings.precision)
        info = {"backend": backend, "quantize": settings.quantize, "graph": str(graph),
                "exported_now": exported, "load_s": round(time.perf_counter() - started, 2), **runtime.describe()}
        return cls(model, runtime, info)

    def forward(self, items: list[Any], batch_size: int) -> np.ndarray:
        """One output row per item, in input order."""
        order = sorted(range(len(items)), key=lambda i: -_length(items[i]))
        rows: list[np.ndarray] = [np.empty(0)] * len(items)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            features = self.model.preprocess([items[i] for i in batch])
            out = self.runtime.run({n: features[n].numpy() for n in self.runtime.input_names})
            for i, row in zip(batch, out):
                rows[i] = row
        return np.asarray(rows, dtype=np.float32)
