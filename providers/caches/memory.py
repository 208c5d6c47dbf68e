"""An in-process LRU cache, bounded by entries and by bytes, with a TTL per entry.

Values are stored encoded (`providers.caches.codec`), as Redis stores them:
the byte bound is then exact, a caller mutating a value it set or got cannot
change what is cached, and both caches accept and return the same values.

Safe under asyncio without a lock: no method awaits between reading and
writing the table, so on one event loop every call runs whole.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, NamedTuple

from pydantic import Field

from providers.caches import codec
from providers.config_base import ProviderConfig, parse_provider_config
from providers.interfaces.cache import CacheProvider


class MemoryCacheConfig(ProviderConfig):
    max_entries: int = Field(10_000, ge=1, description="Most entries kept; the least recently used go first.")
    max_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Most bytes of encoded values kept (keys not counted)."
    )
    default_ttl_s: float | None = Field(None, gt=0, description="Expiry when a call gives none; None: never.")


class _Entry(NamedTuple):
    data: bytes
    expires_at: float | None  # time.monotonic() deadline


class MemoryCache(CacheProvider):
    def __init__(self) -> None:
        self.settings = MemoryCacheConfig()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # oldest use first
        self._bytes = 0
        self._hits = self._misses = self._evictions = self._expired = 0

    async def initialize(self, config: dict[str, Any]) -> None:
        self.settings = parse_provider_config(MemoryCacheConfig, config)

    @classmethod
    def max_replicas(cls, config: dict[str, Any]) -> int | None:
        return None  # each replica has its own cache; correct at any count, just colder

    # -- table primitives (never await inside) --

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= now:
            self._remove(key)
            self._expired += 1
            return None
        return entry

    def _remove(self, key: str) -> _Entry | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.data)
        return entry

    def _store(self, key: str, data: bytes, ttl: float | None, now: float) -> None:
        self._remove(key)
        if len(data) > self.settings.max_bytes:
            return  # could never fit; dropping the old value keeps reads from going stale
        self._entries[key] = _Entry(data, None if ttl is None else now + ttl)
        self._bytes += len(data)
        while len(self._entries) > self.settings.max_entries or self._bytes > self.settings.max_bytes:
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old.data)
            self._evictions += 1

    def _lookup(self, key: str, now: float) -> Any | None:
        entry = self._live(codec.check_key(key), now)
        if entry is None:
            self._misses += 1
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return codec.decode(entry.data)

    # -- CacheProvider --

    async def get(self, key: str) -> Any | None:
        return self._lookup(key, time.monotonic())

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        now = time.monotonic()
        unique = list(dict.fromkeys(codec.check_key(k) for k in keys))  # a repeated key counts once
        found = {k: e for k in unique if (e := self._live(k, now)) is not None}
        self._misses += len(unique) - len(found)
        self._hits += len(found)
        for key in found:
            self._entries.move_to_end(key)
        return {k: codec.decode(e.data) for k, e in found.items()}

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        codec.check_key(key)
        ttl = codec.resolve_ttl(ttl, self.settings.default_ttl_s)
        self._store(key, codec.encode(value), ttl, time.monotonic())

    async def set_many(self, items: dict[str, Any], ttl: float | None = None) -> None:
        ttl = codec.resolve_ttl(ttl, self.settings.default_ttl_s)
        # Encode all first: one bad value stores nothing, as in the Redis cache.
        encoded = {codec.check_key(k): codec.encode(v) for k, v in items.items()}
        now = time.monotonic()
        for key, data in encoded.items():
            self._store(key, data, ttl, now)

    async def delete(self, key: str) -> bool:
        live = self._live(codec.check_key(key), time.monotonic()) is not None
        self._remove(key)
        return live

    async def exists(self, key: str) -> bool:
        return self._live(codec.check_key(key), time.monotonic()) is not None

    async def clear(self, namespace: str | None = None) -> int:
        now = time.monotonic()
        prefix = None if namespace is None else f"{namespace}:"
        doomed = [k for k in self._entries if prefix is None or k.startswith(prefix)]
        removed = 0
        for key in doomed:
            entry = self._remove(key)
            removed += entry is not None and (entry.expires_at is None or entry.expires_at > now)
        return removed  # live entries only, as Redis would count them

    def _purge_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, e in self._entries.items() if e.expires_at is not None and e.expires_at <= now]:
            self._remove(key)
            self._expired += 1

    async def get_stats(self) -> dict[str, Any]:
        self._purge_expired()  # O(entries), but stats are read rarely; size then counts live entries
        lookups = self._hits + self._misses
        return {
            "hits": self._hits,
            "misses": self._misses,
            "hit_ratio": self._hits / lookups if lookups else 0.0,
            "size": len(self._entries),
            "bytes": self._bytes,
            "evictions": self._evictions,
            "expired": self._expired,
            "max_entries": self.settings.max_entries,
            "max_bytes": self.settings.max_bytes,
        }

    async def health_check(self) -> dict[str, Any]:
        return {"status": "healthy", "size": len(self._entries), "bytes": self._bytes}

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0
