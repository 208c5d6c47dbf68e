"""What the embedding providers here share: how they report their health."""

from __future__ import annotations

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
