"""CACHE: a key-value cache with expiry, namespaces and hit statistics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class CacheProvider(ABC):
    """Contract of a cache provider.

    Keys are strings, optionally ``namespace:key``; ``ttl`` is in seconds and
    ``None`` means the configured default (or no expiry). A miss is ``None``.
    """

    @abstractmethod
    async def initialize(self, config: dict[str, Any]) -> None:
        """Connect to (or start) the cache described by ``config``."""

    @abstractmethod
    async def get(self, key: str) -> Any | None:
        """The cached value, or ``None`` on a miss or after expiry."""

    @abstractmethod
    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store a value, expiring after ``ttl`` seconds."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove a key; ``False`` if it was absent."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether a live (unexpired) value is stored under ``key``."""

    @abstractmethod
    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The cached values of the keys that hit; misses are left out."""

    @abstractmethod
    async def set_many(self, items: dict[str, Any], ttl: float | None = None) -> None:
        """Store several values, each expiring after ``ttl`` seconds."""

    @abstractmethod
    async def clear(self, namespace: str | None = None) -> int:
        """Remove the keys of ``namespace`` (all keys when ``None``); how many were removed."""

    @abstractmethod
    async def get_stats(self) -> dict[str, Any]:
        """At least ``hits``, ``misses`` and ``size`` (entries)."""

    @abstractmethod
    async def health_check(self) -> dict[str, Any]:
        """``{"status": "healthy" | "unhealthy", ...}``; never raises."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections (and stop an embedded server it started); safe to call twice."""
