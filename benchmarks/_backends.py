"""The embedder and cross-encoder backends the benchmarks compare (``--backend``), by label:
each label is the provider config keys that select it (docs/providers.md#cpu-backends)."""

BACKENDS = {
    "torch": {"backend": "torch"},
    "onnx": {"backend": "onnx"},
    "openvino": {"backend": "openvino"},
    "openvino-bf16": {"backend": "openvino", "precision": "bf16"},
    "onnx-int8": {"backend": "onnx", "quantize": "dynamic"},
    # two forward passes at once, a thread each (config key streams)
    "openvino-bf16-streams2": {"backend": "openvino", "precision": "bf16", "streams": 2},
}
