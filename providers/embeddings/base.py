"""What the embedding providers here share: how they report their health."""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np

from providers.interfaces.embeddings import EmbeddingProvider


class EmbeddingProviderBase(EmbeddingProvider):
    """An `EmbeddingProvider` whose ``health_check`` embeds a probe query and checks
    the vector (``get_dimension()`` values, all finite). Subclasses add keys to the
    report with `_health_details`."""

    last_error: str | None = None

    def _health_details(self) -> dict[str, Any]:
        return {}

    async def health_check(self) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            self.last_error = _vector_problem(await self.embed_query("health check"), self.get_dimension())
        except Exception as exc:  # health checks report, never raise
            self.last_error = f"{type(exc).__name__}: {exc}"
        ok = self.last_error is None
        # The seed's report (test_successful, model_loaded, gpu_available, last_error;
        # error when unhealthy), so code written against the seed reads it as it is.
        return {
            "status": "healthy" if ok else "unhealthy",
            "model_name": self.get_model_name(),
            "test_successful": ok,
            "model_loaded": ok,  # the probe ran through the model; a subclass may know better
            "gpu_available": bool(self.supports_gpu()),
            **self._health_details(),
            "dimension": self.get_dimension(),
            "response_time": round(time.perf_counter() - start, 4),
            "last_error": self.last_error,
            **({} if ok else {"error": self.last_error}),
        }


def _vector_problem(vector: Any, dimension: int) -> str | None:
    vector = np.asarray(vector)
    if vector.shape != (dimension,):
        return f"embedding has shape {vector.shape}, expected ({dimension},)"
    if not np.isfinite(vector).all():
        return "embedding holds NaN or infinity"
    return None


def decode_vector(raw: Any) -> np.ndarray:
    """One embedding from a remote server's JSON: a list of floats, or base64 of
    little-endian float32 (OpenAI's and Cohere's ``base64`` encodings). Raises
    ``TypeError``/``ValueError`` for anything else; callers name the server."""
    if isinstance(raw, str):
        v = np.frombuffer(base64.b64decode(raw, validate=True), dtype="<f4").astype(np.float32)
    elif isinstance(raw, list):
        v = np.asarray(raw, dtype=np.float32)
    else:
        raise TypeError(f"an embedding must be a list or a base64 string, got {type(raw).__name__}")
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"an embedding must be a non-empty flat vector, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("an embedding holds NaN or infinity")
    return v
