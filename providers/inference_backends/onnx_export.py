"""A sentence-transformers model's forward pass as an ONNX graph, checked against torch.

The graph is the whole module pipeline of the model (a SentenceTransformer's
Transformer -> Pooling -> [Dense] -> [Normalize]; a CrossEncoder's
Transformer -> logits), called as sentence-transformers calls it, so pooling
and every other module come out exactly as the model defines them; only the
tokenizer stays in Python. Inputs are the tensors the model's own
``preprocess`` returns (input_ids, attention_mask, and token_type_ids where
the model has them), batch and sequence axes dynamic.

Exporter: torch's TorchScript-based ``torch.onnx.export(dynamo=False)``,
deprecated since torch 2.9 but measured better here (all-MiniLM-L6-v2, 2
cores): exported in 1.5 s vs 5.5 s for ``dynamo=True``, and ONNX Runtime ran
its graph at 751 vs 630 sentences/s (batches of 32). If a later torch drops
it, the torch.export-based exporter is used; the exporter's name and torch's
version are part of the cache key. Either way the graph is checked against
torch on a batch of other shapes (more rows, longer, padded) before it is
published: tracing freezes Python branches, and a frozen shape would show
there.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# A check batch unlike the trace batch: other size, longer, padding in it.
TRACE_INPUTS = ["a short one", "the second sample is a little longer than the first"]
CHECK_TEXTS = [
    "one", "A man is playing a guitar on the stage tonight.",
    "Three dogs run through the snow in a park near the river while children watch them from a bench.",
]
# fp32 graphs agree with torch to ~1e-6 (all-MiniLM-L6-v2: cosine 1.000000 on STS-B); 1e-3 leaves room
# for kernels that sum in another order, and still catches a frozen shape (errors of order 1).
MAX_ABS_DIFF = 1e-3


class ExportStepError(Exception):
    """An export step failed; ``step`` names it (trace, check, quantize)."""

    def __init__(self, step: str, cause: BaseException | str) -> None:
        self.step = step
        super().__init__(f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else cause)


def exporter_tag() -> str:
    """torch's version for the cache key, read from the installed package's metadata, not from
    ``torch.__version__``: the torch-free warm path must make the same key without importing torch
    (the same string: 2.13.0+cpu in both here, and the local part is dropped)."""
    from importlib.metadata import version

    return f"torch-{version('torch').split('+')[0]}"  # PackageNotFoundError without torch


def check_items(pairs: bool) -> list[Any]:
    """Inputs for the torch-vs-graph check (query, document pairs for a cross-encoder)."""
    return [("what is this", t) for t in CHECK_TEXTS] if pairs else list(CHECK_TEXTS)


def trace_items(pairs: bool) -> list[Any]:
    return [("query", t) for t in TRACE_INPUTS] if pairs else list(TRACE_INPUTS)


def _wrapper(model: Any, names: list[str], extras: dict[str, Any], output: str) -> Any:
    import torch

    class Forward(torch.nn.Module):
        """Positional tensors in, the model's ``output`` feature out (ONNX has no dicts)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model({**dict(zip(names, tensors)), **extras})[output]

    return Forward().eval()


def tensor_features(features: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """(names of the tensor inputs, the non-tensor extras such as ``modality``) of a preprocess result."""
    import torch

    names = [k for k, v in features.items() if isinstance(v, torch.Tensor)]
    return names, {k: v for k, v in features.items() if k not in names}


def export_graph(model: Any, output: str, pairs: bool, directory: Path) -> dict:
    """Write ``directory/model.onnx``; return what was done (recorded beside it)."""
    import torch

    started = time.perf_counter()
    features = model.preprocess(trace_items(pairs))
    names, extras = tensor_features(features)
    forward = _wrapper(model, names, extras, output)
    args = tuple(features[n] for n in names)
    target = str(directory / "model.onnx")
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"output": {0: "batch"}}
    exporter = "torchscript"
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings, each time
            try:
                torch.onnx.export(forward, args, target, input_names=names, output_names=["output"],
                                  dynamic_axes=axes, opset_version=17, dynamo=False)
            except (AttributeError, TypeError, NotImplementedError, RuntimeError):
                exporter = "dynamo"
                dim_b, dim_s = torch.export.Dim("batch"), torch.export.Dim("sequence")
                torch.onnx.export(forward, args, target, input_names=names, output_names=["output"],
                                  dynamic_shapes=[{0: dim_b, 1: dim_s} for _ in names], dynamo=True,
                                  external_data=False)
    except Exception as exc:
        raise ExportStepError("trace", exc) from exc
    return {"inputs": names, "output": output, "exporter": exporter, "torch": torch.__version__,
            "export_s": round(time.perf_counter() - started, 2)}


def check_against_torch(model: Any, output: str, pairs: bool, run: Callable[[dict[str, Any]], Any]) -> float:
    """Largest absolute difference between torch and ``run`` (the graph in a runtime, fp32) on the
    check batch; raises past MAX_ABS_DIFF."""
    import torch

    features = model.preprocess(check_items(pairs))
    names, _ = tensor_features(features)
    with torch.inference_mode():
        expected = model({**features})[output].float().numpy()
    try:
        got = np.asarray(run({n: features[n].numpy() for n in names}))
    except Exception as exc:
        raise ExportStepError("check", exc) from exc
    if got.shape != expected.shape:
        raise ExportStepError("check", f"graph output shape {got.shape}, torch {expected.shape}")
    diff = float(np.abs(got - expected).max())
    if not diff <= MAX_ABS_DIFF:
        raise ExportStepError("check", f"graph and torch differ by {diff:.3g} (allowed {MAX_ABS_DIFF})")
    return diff


def quantize_dynamic(source: Path, directory: Path) -> dict:
    """int8 weights, activations quantized per batch at run time (ONNX Runtime's quantize_dynamic).
    Measured on all-MiniLM-L6-v2 (2 cores): 1.0 s; 23 MB from 90; STS-B Spearman 81.80 vs 82.03."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(source), str(directory / "model.onnx"), weight_type=QuantType.QInt8)
    except Exception as exc:
        raise ExportStepError("quantize", exc) from exc
    return {"quantized_from": str(source), "quantize": "dynamic int8 (onnxruntime.quantization)",
            "quantize_s": round(time.perf_counter() - started, 2)}
