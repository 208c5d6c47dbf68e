"""Providers that misbehave on purpose, for fault tests on real Ray.

They are not stand-ins for a real part: the real model runs in every test
that checks embeddings. These exist to make a provider raise, hang or fail
to start on demand, which the real one never does.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import numpy as np

from providers.interfaces.embeddings import EmbeddingProvider


class HashEmbedder(EmbeddingProvider):
    """Deterministic vectors from a hash of the text; starts instantly."""

    async def initialize(self, config: dict[str, Any]) -> None:
        self.dim = int(config.get("dimension", 384))
        self.delay_s = float(config.get("delay_s", 0.0))
        self.fail = bool(config.get("fail", False))
        self.label = str(config.get("label", "hash"))
        # Fails until this wall-clock time (epoch seconds), then heals.
        self.fail_until = float(config.get("fail_until", 0.0))
        # Health checks report unhealthy from this wall-clock time on.
        self.unhealthy_from = float(config.get("unhealthy_from", 0.0))
        # Faults on a clock (epoch seconds), so a running replica can be told when:
        # hang (never answer) or answer malformed vectors until then.
        self.hang_until = float(config.get("hang_until", 0.0))
        self.malformed_until = float(config.get("malformed_until", 0.0))
        # A leak: every call keeps this many MiB; the health check reports unhealthy
        # once the process has grown by max_rss_growth_mb (as a real provider
        # watching its own memory would), so Serve replaces the replica.
        self.leak_mb_per_call = float(config.get("leak_mb_per_call", 0.0))
        self.max_rss_growth_mb = float(config.get("max_rss_growth_mb", 0.0))
        self._leaked: list[bytearray] = []
        self._rss_at_start = _rss_mb()
        # A file whose text names the fault to act out now ("hang", "malformed",
        # "fail", "leak" or nothing): lets a benchmark switch faults on running
        # replicas instantly, without a redeploy. Replicas share the machine's disk.
        self.fault_file = str(config.get("fault_file", ""))

    def _fault(self) -> str:
        if not self.fault_file:
            return ""
        try:
            with open(self.fault_file, encoding="utf-8") as f:
                return f.read().strip()
        except OSError:
            return ""

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    async def embed_texts(self, texts: list[str], batch_size: int = 32) -> list[np.ndarray]:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        fault = self._fault()
        if self.fail or time.time() < self.fail_until or fault == "fail":
            raise RuntimeError(f"{self.label} fails on purpose")
        while time.time() < self.hang_until or fault == "hang":
            await asyncio.sleep(0.05)
            fault = self._fault()
        if self.leak_mb_per_call and (not self.fault_file or fault == "leak"):
            chunk = bytearray(int(self.leak_mb_per_call * 2**20))
            chunk[::4096] = b"x" * len(chunk[::4096])  # touch every page: resident, not just reserved
            self._leaked.append(chunk)
        if time.time() < self.malformed_until or fault == "malformed":
            return [np.full(self.dim - 1, np.nan, dtype=np.float32) for _ in texts[:-1] or texts]
        return [self._vector(t) for t in texts]

    async def embed_query(self, query: str) -> np.ndarray:
        return (await self.embed_texts([query]))[0]

    def get_dimension(self) -> int:
        return self.dim

    def supports_gpu(self) -> bool:
        return False

    def get_model_name(self) -> str:
        return self.label

    async def health_check(self) -> dict[str, Any]:
        # Healthy even when its calls fail: a provider whose health check says
        # so never starts (Serve's replica check delegates to it), and the
        # failures worth testing are the ones that slip past health checks.
        if self.unhealthy_from and time.time() >= self.unhealthy_from:
            return {"status": "unhealthy", "label": self.label, "error": "degraded on purpose"}
        grown = _rss_mb() - self._rss_at_start
        if self.max_rss_growth_mb and grown > self.max_rss_growth_mb:
            return {"status": "unhealthy", "label": self.label,
                    "error": f"memory grew by {grown:.0f} MiB (limit {self.max_rss_growth_mb:.0f})"}
        return {"status": "healthy", "label": self.label}


def _rss_mb() -> float:
    import psutil  # Ray's own dependency

    return psutil.Process().memory_info().rss / 2**20


class BrokenInitEmbedder(HashEmbedder):
    async def initialize(self, config: dict[str, Any]) -> None:
        raise RuntimeError("cannot reach the model server (on purpose)")


class IncompleteEmbedder:
    """Has only some of the interface: registration must name what is missing."""

    async def initialize(self, config: dict[str, Any]) -> None:
        pass

    async def embed_texts(self, texts: list[str], batch_size: int = 32) -> list[np.ndarray]:
        return []
