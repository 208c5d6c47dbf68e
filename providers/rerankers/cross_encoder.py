"""Reranking with a sentence-transformers ``CrossEncoder``, in process.

The model reads query and document together (one forward pass per pair),
which ranks better than comparing two embeddings but costs a pass per
candidate: rerank tens to hundreds of first-stage hits, not a corpus.

Scores are the model's raw logits, mapped by ``normalization`` (default
``sigmoid``, 0..1). sentence-transformers would apply its own activation
(a sigmoid for one-label models) inside ``predict``; it is turned off here so
``normalization`` alone decides, and "none" really gives logits.

``backend: onnx`` or ``openvino`` scores the pairs in ONNX Runtime or
OpenVINO on a graph exported from the loaded model (its logits, before any
activation) and cached on disk (`providers.inference_backends`); the pairs are
still tokenized by sentence-transformers.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field

from providers.config_base import parse_provider_config
from providers.errors import ConfigError, ProviderLoadError, not_initialized
from providers.inference_backends import BackendFields
from providers.owner_thread import OwnerThread
from providers.rerankers.common import RerankerBase, RerankerConfig

OWNER = "cross-encoder reranker"


class CrossEncoderConfig(RerankerConfig, BackendFields):
    model_name: str = Field(..., min_length=1, description="Hub id or local directory of a one-label cross-encoder.")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="auto picks cuda when present.")
    batch_size: int = Field(32, ge=1, le=4096, description="Pairs per forward pass.")
    max_length: int | None = Field(
        None, ge=8,
        description="Truncate each (query, document) pair to this many tokens; default: the model's limit.")
    normalization: Literal["none", "sigmoid", "minmax"] = Field(
        "sigmoid", description="'sigmoid' maps logits to 0..1; 'none' keeps logits.")
    local_files_only: bool = Field(False, description="Never contact a model hub.")
    trust_remote_code: bool = Field(False, description="Allow model repos to run their own code.")
    num_threads: int | None = Field(
        None, ge=1,
        description="CPU threads of an ONNX Runtime or OpenVINO forward pass; default: OMP_NUM_THREADS "
        "(Ray sets it to the replica's num_cpus).")


class CrossEncoderReranker(RerankerBase):
    def __init__(self) -> None:
        super().__init__()
        self.model: Any = None
        self.exported: Any = None  # an ExportedModel when backend is onnx or openvino
        self.device = "cpu"
        self.model_name = "unloaded"
        self.max_length: int | None = None
        # One thread owns the model, as in the sentence-transformers embedder:
        # forward passes never run concurrently (they would only fight over
        # the same cores) and the event loop stays free while they run.
        self._thread = OwnerThread(OWNER, thread_name="rerank")

    async def initialize(self, config: dict[str, Any]) -> None:
        self.settings = parse_provider_config(CrossEncoderConfig, config)
        self._thread.start()
        await self._thread.run(self._load)

    def _load(self) -> None:
        import torch  # heavy: imported only by the provider that needs it
        from sentence_transformers import CrossEncoder

        s: CrossEncoderConfig = self.settings  # type: ignore[assignment]
        device = s.device
        if s.backend != "torch" and device not in ("auto", "cpu"):
            raise ConfigError(f"backend {s.backend} runs on the CPU; device must be auto or cpu", "config.device")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() and s.backend == "torch" else "cpu"
        elif device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("device is 'cuda' but no CUDA device is visible to this process", "config.device")
        local = os.path.isdir(s.model_name)
        try:
            model = CrossEncoder(
                s.model_name,
                device=device,
                max_length=s.max_length,
                local_files_only=s.local_files_only or local,
                trust_remote_code=s.trust_remote_code,
            )
        except Exception as exc:
            raise ProviderLoadError(f"cannot load cross-encoder {s.model_name!r}: {exc}") from exc
        if model.num_labels != 1:
            raise ProviderLoadError(
                f"{s.model_name!r} has {model.num_labels} labels; a reranker needs a one-label (relevance) model")
        model.max_seq_length = self._length_limit(model, s.max_length)
        self.model, self.device, self.model_name = model, device, s.model_name
        self.max_length = model.max_seq_length
        if s.backend != "torch":
            from providers.inference_backends.exported_model import ExportedModel
            from providers.inference_backends.runtimes import thread_count

            # Stays on the torch path even with a warm cache, unlike the embedder
            # (light_text): its pairs go through the tokenizer's pair template and
            # "longest_first" truncation, and CrossEncoder's own config (num_labels,
            # max_length) would need reading as well; no cross-encoder is in the
            # default config, so the memory it would save is not on make serve's bill.
            self.exported = ExportedModel.load(
                model, label=os.path.basename(os.path.normpath(s.model_name)), model_dir=s.model_name if local else None,
                output="scores", pairs=True, settings=s, threads=thread_count(s.num_threads))

    @staticmethod
    def _length_limit(model: Any, wanted: int | None) -> int | None:
        """Tokens kept per pair, never beyond the position table: measured with
        sentence-transformers 6.2, ``max_length=1000`` on a 64-position BERT
        made a long pair crash the forward pass (tensor size mismatch)."""
        positions = getattr(model.config, "max_position_embeddings", None)
        limit = wanted or model.max_seq_length
        if positions and (limit is None or limit > positions):
            limit = positions
        return limit

    async def _score(self, query: str, documents: list[str]) -> list[float]:
        return await self._thread.run(self.predict_pairs, [(query, d) for d in documents])

    async def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[float]:
        return await self._thread.run(self.predict_pairs, pairs)

    def predict_pairs(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Blocking: raw logits, one per (query, document) pair, in input order."""
        import torch

        if self.model is None:
            raise not_initialized(OWNER)
        if self.exported is not None:
            if not pairs:
                return []
            return [float(x) for x in self.exported.forward(pairs, self.settings.batch_size).reshape(-1)]  # type: ignore[attr-defined]
        out = self.model.predict(
            pairs,
            batch_size=self.settings.batch_size,  # type: ignore[attr-defined]
            activation_fn=torch.nn.Identity(),  # raw logits: `normalization` decides
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [float(x) for x in out.reshape(-1)]

    def get_reranker_type(self) -> str:
        return "cross_encoder"

    def supports_batch_reranking(self) -> bool:
        return True  # one padded forward pass scores a whole batch of pairs

    def _health_details(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "model_loaded": self.model is not None,
                "device": self.device, "max_length": self.max_length,
                **(self.exported.info if self.exported is not None else {"backend": "torch"})}

    async def close(self) -> None:
        await self._thread.close()
        if self.exported is not None:
            self.exported.close()
