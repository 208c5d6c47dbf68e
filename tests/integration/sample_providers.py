"""Providers that misbehave on purpose, for fault tests on real Ray.

They are not stand-ins for a real part: the real model runs in every test
that checks embeddings. These exist to make a provider raise, hang or fail
to start on demand, which the real one never does.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import numpy as np

from providers.interfaces.embeddings import EmbeddingProvider


class HashEmbedder(EmbeddingProvider):
    """Deterministic vectors from a hash of the text; starts instantly.

    Its faults follow triggers, never the clock: a test that waits for a
    wall-clock moment fails on a machine too busy to reach it in time.

    - ``fail``, ``malformed``, ``unhealthy`` (config flags): every call raises,
      every answer is malformed, every health check reports unhealthy.
    - ``fault_file`` (a path): the words in this file name the faults to act
      out now, read at every call and every health check: ``fail``, ``hang``
      (until the word goes), ``malformed``, ``leak``, ``unhealthy``. A test or
      benchmark switches faults on running replicas by writing the file, with
      no redeploy; replicas share the machine's disk. A missing file is no fault.
    - ``delay_s``: every call takes this long first (latency, not a fault).
    """

    async def initialize(self, config: dict[str, Any]) -> None:
        self.dim = int(config.get("dimension", 384))
        self.delay_s = float(config.get("delay_s", 0.0))
        self.fail = bool(config.get("fail", False))
        self.malformed = bool(config.get("malformed", False))
        self.unhealthy = bool(config.get("unhealthy", False))
        self.label = str(config.get("label", "hash"))
        # A leak: every call keeps this many MiB (with a fault_file: only while it
        # says "leak"); the health check reports unhealthy once the process has
        # grown by max_rss_growth_mb (as a real provider watching its own memory
        # would), so Serve replaces the replica.
        self.leak_mb_per_call = float(config.get("leak_mb_per_call", 0.0))
        self.max_rss_growth_mb = float(config.get("max_rss_growth_mb", 0.0))
        self._leaked: list[bytearray] = []
        self._rss_at_start = _rss_mb()
        self.fault_file = str(config.get("fault_file", ""))

    def _faults(self) -> set[str]:
        if not self.fault_file:
            return set()
        try:
            with open(self.fault_file, encoding="utf-8") as f:
                return set(f.read().split())
        except OSError:
            return set()

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    async def embed_texts(self, texts: list[str], batch_size: int = 32) -> list[np.ndarray]:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        faults = self._faults()
        if self.fail or "fail" in faults:
            raise RuntimeError(f"{self.label} fails on purpose")
        while "hang" in faults:
            await asyncio.sleep(0.05)
            faults = self._faults()
        if self.leak_mb_per_call and (not self.fault_file or "leak" in faults):
            chunk = bytearray(int(self.leak_mb_per_call * 2**20))
            chunk[::4096] = b"x" * len(chunk[::4096])  # touch every page: resident, not just reserved
            self._leaked.append(chunk)
        if self.malformed or "malformed" in faults:
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
        if self.unhealthy or "unhealthy" in self._faults():
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


def set_faults(path: Any, *faults: str) -> None:
    """Make ``path`` (a HashEmbedder's ``fault_file``) name ``faults``; none: no fault.

    Replaced in one step, so a replica reading it mid-write never sees an empty file."""
    import os

    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(" ".join(faults))
    os.replace(tmp, path)
