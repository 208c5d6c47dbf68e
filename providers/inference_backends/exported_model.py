"""A sentence-transformers model whose forward pass runs in ONNX Runtime or OpenVINO.

`ExportedModel.load` takes the model loaded by sentence-transformers (torch),
finds its graph in the export cache or exports it (checked against torch,
published atomically), then opens it in the runtime; its `forward` tokenizes
with the model's own ``preprocess`` (so truncation, pair encoding and special
tokens are sentence-transformers' own).

`ExportedModel.load_cached` is the embedder's torch-free warm path: from the
model's directory alone it makes the same cache key, opens the cached graph,
and tokenizes with `light_text.TextTokenizer`, provided the entry records that
this tokenizer made exactly what ``preprocess`` made when it was exported. It
raises `light_text.Unavailable` (with the reason) when it cannot serve, and
the provider then loads with torch as before.

Either way `forward` runs the graph in batches, longest inputs first as
sentence-transformers does, so a batch pads little. With ``streams`` > 1 the
batches run side by side, one per stream, and a call too small to fill the
streams is cut into that many batches (of 4 inputs at least): the
registry's merged calls (~20 texts at 64 one-text clients) then use both
streams.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
    tensor_features,
)
from providers.inference_backends.runtimes import Runtime, open_runtime

Tokenize = Callable[[list[Any]], dict[str, np.ndarray]]
MIN_SPLIT_BATCH = 4  # below this a pass costs more per input than a stream saves


def _length(item: Any) -> int:
    return sum(len(part) for part in item) if isinstance(item, (tuple, list)) else len(item)


def _keys(label: str, digest: str, output: str, settings: BackendFields) -> tuple[str, str | None]:
    """(the fp32 entry's key, the int8 entry's key or None). ``onnxruntime`` is imported only for int8,
    which runs on it anyway."""
    tag = exporter_tag()
    fp32 = export_cache.entry_key(label, digest, output, "fp32", tag)
    if settings.quantize != "dynamic":
        return fp32, None
    import onnxruntime

    return fp32, export_cache.entry_key(label, digest, output, "int8dyn", f"{tag}-ort-{onnxruntime.__version__}")


def _preprocess(model: Any) -> Tokenize:
    def tokenize(items: list[Any]) -> dict[str, np.ndarray]:
        features = model.preprocess(items)
        names, _ = tensor_features(features)
        return {n: features[n].numpy() for n in names}

    return tokenize


class ExportedModel:
    def __init__(self, tokenize: Tokenize, runtime: Runtime, info: dict[str, Any], meta: dict[str, Any]) -> None:
        self.tokenize = tokenize
        self.runtime = runtime
        self.info = info
        self.meta = meta  # the fp32 entry's export.json
        self._pool = ThreadPoolExecutor(runtime.streams, thread_name_prefix="forward") if runtime.streams > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    @classmethod
    def load(cls, model: Any, *, label: str, model_dir: str | None, output: str, pairs: bool,
             settings: BackendFields, threads: int, max_seq_length: int | None = None) -> ExportedModel:
        """``output``: the feature the graph returns (``sentence_embedding`` or ``scores``);
        ``pairs``: the model reads (query, document) pairs (a cross-encoder); ``max_seq_length``:
        the provider's own limit, if any (recorded for the torch-free path's check)."""
        started = time.perf_counter()
        backend = settings.backend
        try:
            root = export_cache.cache_root(model_dir, settings.export_cache_dir)
        except OSError as exc:
            raise ProviderLoadError(f"cannot cache the {backend} export of {label!r}: {exc}") from exc
        if model_dir:
            digest = export_cache.files_digest(model_dir)
        else:
            digest = export_cache.weights_digest(model.state_dict().items())
        fp32_key, int8_key = _keys(label, digest, output, settings)

        def write_fp32(directory: Path) -> dict:
            meta = export_graph(model, output, pairs, directory)
            check = open_runtime(backend, directory / export_cache.GRAPH_FILE, threads)
            meta["check_max_abs_diff"] = check_against_torch(model, output, pairs, check.run)
            if output == "sentence_embedding" and model_dir:
                from providers.inference_backends.light_text import verify

                meta["light"] = verify(model, model_dir, max_seq_length, meta["inputs"])
            return meta

        try:
            graph, exported = export_cache.publish(root, fp32_key, write_fp32)
            meta = export_cache.read_meta(graph)
            if int8_key:
                fp32 = graph
                graph, quantized = export_cache.publish(root, int8_key, lambda directory: quantize_dynamic(fp32, directory))
                exported = exported or quantized
        except ExportStepError as exc:
            raise ProviderLoadError(
                f"cannot export {label!r} for backend {backend!r}: the {exc.step!r} step failed: {exc}") from exc
        except OSError as exc:
            raise ProviderLoadError(f"cannot write the {backend} export of {label!r} under {str(root)!r}: {exc}") from exc
        runtime = open_runtime(backend, graph, threads, settings.precision, settings.streams)
        return cls(_preprocess(model), runtime, cls._info(settings, graph, exported, started, runtime), meta)

    @classmethod
    def load_cached(cls, model_dir: str, *, label: str, settings: BackendFields, threads: int,
                    max_seq_length: int | None) -> ExportedModel:
        """The embedder's graph from the cache, tokenized without torch; `Unavailable` says why not."""
        from importlib.metadata import PackageNotFoundError

        from providers.inference_backends.light_text import TextTokenizer, Unavailable, read_sentence_model

        started = time.perf_counter()
        files = read_sentence_model(model_dir)
        try:
            root = export_cache.cache_root(model_dir, settings.export_cache_dir)
            fp32_key, int8_key = _keys(label, export_cache.files_digest(model_dir), "sentence_embedding", settings)
        except PackageNotFoundError as exc:
            raise Unavailable(f"the package {exc} is not installed") from exc
        except OSError as exc:
            raise Unavailable(f"no export cache: {exc}") from exc
        fp32 = export_cache.find(root, fp32_key)
        graph = export_cache.find(root, int8_key) if int8_key else fp32
        if fp32 is None or graph is None:
            raise Unavailable("the graph is not in the export cache yet (exporting it needs torch)")
        meta = export_cache.read_meta(fp32)
        light = meta.get("light") or {}
        if light.get("tokenizer") != "same":
            raise Unavailable(f"at export, tokenizer.json was {light.get('tokenizer') or 'not checked'}")
        runtime = open_runtime(settings.backend, graph, threads, settings.precision, settings.streams)
        tokenize = TextTokenizer(files, max_seq_length or files.max_seq_length, runtime.input_names)
        return cls(tokenize, runtime, cls._info(settings, graph, False, started, runtime), meta)

    @staticmethod
    def _info(settings: BackendFields, graph: Path, exported: bool, started: float, runtime: Runtime) -> dict:
        return {"backend": settings.backend, "quantize": settings.quantize, "graph": str(graph),
                "exported_now": exported, "load_s": round(time.perf_counter() - started, 2), **runtime.describe()}

    def forward(self, items: list[Any], batch_size: int) -> np.ndarray:
        """One output row per item, in input order."""
        order = sorted(range(len(items)), key=lambda i: -_length(items[i]))
        if self._pool is not None:  # enough batches for every stream, while a batch keeps 4 inputs
            batch_size = min(batch_size, max(MIN_SPLIT_BATCH, math.ceil(len(items) / self.runtime.streams)))
        batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
        # Tokenized here, in the caller's thread (the tokenizers are not shared across threads); run on the streams.
        feeds = [{n: f[n] for n in self.runtime.input_names}
                 for f in (self.tokenize([items[i] for i in batch]) for batch in batches)]
        if self._pool is not None and len(batches) > 1:
            outs = list(self._pool.map(self.runtime.run_stream, feeds))
        else:
            outs = [self.runtime.run(f) for f in feeds]
        rows: list[np.ndarray] = [np.empty(0)] * len(items)
        for batch, out in zip(batches, outs):
            for i, row in zip(batch, out):
                rows[i] = row
        return np.asarray(rows, dtype=np.float32)
