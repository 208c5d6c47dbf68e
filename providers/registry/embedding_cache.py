"""Cache-aside for embeddings in the router: a repeated text costs no model call.

Key: ``emb:<provider>:v<version>:<role>:<sha256 of the exact text>``. The
version makes a hot swap (or reload) of the provider a clean cut: the new
version's vectors never mix with the old one's, and old entries age out by
TTL or LRU. The role (``d`` for ``embed_texts``, ``q`` for ``embed_query``)
keeps models that embed queries differently (e5's ``query:`` prefix) apart.

Only vectors the *named* provider computed are stored: a result served by a
fallback of another model would otherwise sit under the primary's key.

The backend is any object with the cache interface's ``get_many`` and
``set_many`` (an in-router `MemoryCache`, or a shared cache provider reached
through the registry). Whatever it does, a cache failure is a miss and a
counted error, never a failed call.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)
WARN_EVERY_S = 30.0


class EmbeddingCache:
    def __init__(self, backend: Any, ttl_s: float | None = None,
                 on_lookup: Any = None) -> None:
        """``on_lookup(hits, misses, errors)`` after every lookup (the router exports it as a metric)."""
        self.backend = backend
        self.ttl_s = ttl_s
        self.on_lookup = on_lookup or (lambda hits, misses, errors: None)
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self._warned_at = 0.0

    @staticmethod
    def key(provider: str, version: int, role: str, text: str) -> str:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return f"emb:{provider}:v{version}:{role}:{digest}"

    async def lookup(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys``; ``{}`` when the backend fails."""
        failed = 0
        try:
            found = await self.backend.get_many(list(dict.fromkeys(keys)))
        except Exception as exc:  # the cache is an optimisation: its failure is a miss
            self._failed("lookup", exc)
            found, failed = {}, 1
        hits = {k: np.asarray(v, dtype=np.float32) for k, v in found.items() if v is not None}
        n_hit = sum(1 for k in keys if k in hits)
        self.hits += n_hit
        self.misses += len(keys) - n_hit
        self.on_lookup(n_hit, len(keys) - n_hit, failed)
        return hits

    async def store(self, items: dict[str, np.ndarray]) -> None:
        if not items:
            return
        try:
            await self.backend.set_many({k: np.asarray(v, dtype=np.float32) for k, v in items.items()}, self.ttl_s)
        except Exception as exc:
            self._failed("store", exc)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:  # a dead cache must not flood the logs
            self._warned_at = now
            logger.warning("embedding cache %s failed (%s: %s); serving without it (%d errors so far)",
                           what, type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "", self.errors)

    def stats(self) -> dict[str, Any]:
        total = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "errors": self.errors,
                "hit_ratio": round(self.hits / total, 4) if total else None}


async def cached_embed(cache: EmbeddingCache, provider: str, version: int, role: str, texts: list[str],
                       compute: Any) -> list[np.ndarray]:
    """Vectors of ``texts``: hits from ``cache``, the rest from ``compute(missing_texts)``.

    ``compute`` returns ``(vectors, cacheable)``; only cacheable results (the
    named provider's own) are stored. Duplicates in ``texts`` are computed once.
    """
    keys = [cache.key(provider, version, role, t) for t in texts]
    hits = await cache.lookup(keys)
    missing: dict[str, str] = {}
    for k, t in zip(keys, texts):
        if k not in hits and k not in missing:
            missing[k] = t
    if missing:
        vectors, cacheable = await compute(list(missing.values()))
        fresh = {k: np.asarray(v, dtype=np.float32) for k, v in zip(missing, vectors)}
        if cacheable:
            await cache.store(fresh)
        hits.update(fresh)
    return [hits[k] for k in keys]
