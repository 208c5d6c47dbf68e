"""A cache in Redis or Valkey (redis-py's asyncio client), shared by every replica.

With ``url`` it uses that server. Without, it joins or starts the embedded
Valkey of ``data_dir`` (`providers.caches.embedded_valkey`): one server per
data directory, on a Unix socket, shared by every replica on the node, and
stopped by the last replica that closes (not necessarily the one that
started it: stopping it under the others would empty their cache). Should the
server die (its starter exited, a crash), the first replica to notice starts
a new one (``auto_restart``). A server given by ``url`` is never stopped.

The one rule: a cache failure never fails a call. Down, refusing or slow,
the server costs a call at most about ``connect_timeout_s + socket_timeout_s``
and then ``retry_interval_s`` of nothing at all: reads miss, writes do
nothing, ``errors`` counts each such call, a warning is logged at most every
``warn_interval_s``, and the pool reconnects by itself once the server
answers again. Caller mistakes (a value with no cached form, a bad ttl) still
raise `InvalidRequestError`.

The url's password is never shown: the url is displayed redacted and every
error text is scrubbed of it before it reaches a log, stats or health output.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from providers.caches import codec, embedded_valkey
from providers.config_base import ProviderConfig, parse_provider_config
from providers.errors import ConfigError
from providers.interfaces.cache import CacheProvider
from providers.registry.redaction import redact_urls, scrub_text, secret_values

logger = logging.getLogger(__name__)
T = TypeVar("T")
# What a down, slow or misbehaving server raises through redis-py.
_SERVER_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class RedisCacheConfig(ProviderConfig):
    url: SecretStr | None = Field(
        None, description="redis://[user:password@]host:port/db, rediss:// or unix://; "
        "none: the embedded Valkey of data_dir.",
    )
    data_dir: str = Field(".data/valkey", min_length=1, description="The embedded server's directory.")
    max_memory: str = Field(
        "256mb", pattern=r"^[0-9]+([bBkKmMgG]|[kKmMgG][bB])?$",
        description="The embedded server's memory bound; beyond it the least recently used keys go.",
    )
    auto_restart: bool = Field(True, description="Start the embedded server again when it is found dead.")
    key_prefix: str = Field(
        "pr:", min_length=1, description="Prepended to every key; clear() only touches keys with it."
    )
    default_ttl_s: float | None = Field(None, gt=0, description="Expiry when a call gives none; None: never.")
    socket_timeout_s: float = Field(0.5, gt=0, le=30, description="Longest wait for one reply.")
    connect_timeout_s: float = Field(0.5, gt=0, le=30, description="Longest wait for a connection.")
    retry_interval_s: float = Field(
        1.0, gt=0, le=300, description="After a failure, calls skip the server this long, then try again."
    )
    warn_interval_s: float = Field(30.0, ge=0, description="At most one outage warning per this many seconds.")
    # redis-py's plain pool fails a call at once past its limit (100 in 8.x,
    # measured: 200 concurrent gets, half missed). Calls beyond this number
    # wait for a free connection instead (commands take well under 1 ms).
    max_connections: int = Field(64, ge=1, le=10_000, description="Connections per replica.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: SecretStr | None) -> SecretStr | None:
        # The message must not quote the url: it may hold a password.
        if url is not None and urlsplit(url.get_secret_value()).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return url


class RedisCache(CacheProvider):
    def __init__(self) -> None:
        self.settings = RedisCacheConfig()
        self._client: Redis | None = None
        self._prefix = "pr:"
        self._db = 0
        self._where = "not connected"
        self._secrets: set[str] = set()
        self._embedded_dir: Path | None = None
        # Names this instance's connections in CLIENT LIST: the embedded server's
        # last-one-out check must not count our own just-closed connections.
        self._name = f"pr-cache-{os.getpid()}-{secrets.token_hex(4)}"
        self._deadline = 1.0
        self._hits = self._misses = self._errors = 0
        self._down_until = 0.0  # monotonic time until which calls skip the server
        self._last_error: str | None = None
        self._last_warning = -math.inf
        self._unwarned = 0
        self._restart_task: asyncio.Task[None] | None = None
        self._last_restart = -math.inf

    @classmethod
    def max_replicas(cls, config: dict[str, Any]) -> int | None:
        return None  # any number of replicas may share one server

    async def initialize(self, config: dict[str, Any]) -> None:
        s = self.settings = parse_provider_config(RedisCacheConfig, config)
        self._prefix = s.key_prefix
        # One connect plus one reply; the pool's own retry covers only a stale
        # connection (refused at once), so a slow server is given up on once.
        self._deadline = s.connect_timeout_s + s.socket_timeout_s
        if s.url is None:
            self._embedded_dir = Path(s.data_dir).expanduser().resolve()
            sock, _ = await asyncio.to_thread(embedded_valkey.ensure_running, self._embedded_dir, s.max_memory)
            url, self._where = f"unix://{sock}", f"embedded Valkey at {sock}"
        else:
            url = s.url.get_secret_value()
            self._secrets = _url_secrets(url)
            self._where = redact_urls(url)
        try:
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=s.max_connections,
                timeout=s.socket_timeout_s,  # longest wait for a free connection
                socket_timeout=s.socket_timeout_s,
                socket_connect_timeout=s.connect_timeout_s,
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                client_name=self._name,
            )
        except (ValueError, TypeError):  # the parser's message may quote the url
            raise ConfigError("invalid config.url: cannot be parsed as a Redis URL") from None
        self._db = int(pool.connection_kwargs.get("db") or 0)
        self._client = Redis.from_pool(pool)
        # Reported, not required: a cache that is down must not keep the app from starting.
        await self._call(lambda c: c.ping(), None)

    # -- the failure boundary --

    async def _call(self, op: Callable[[Redis], Awaitable[T]], fallback: T, deadline: float | None = None) -> T:
        """``op`` on the server, or ``fallback`` when it fails or is known to be down."""
        client = self._client
        if client is None:
            return fallback  # closed
        if time.monotonic() < self._down_until:
            self._errors += 1  # skipped: the server failed a moment ago
            return fallback
        try:
            return await asyncio.wait_for(op(client), deadline or self._deadline)
        except _SERVER_ERRORS as exc:
            self._failed(exc)
            return fallback

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._errors += 1
        self._down_until = now + self.settings.retry_interval_s
        self._last_error = self._describe(exc)
        self._warn(now, "cache %s unavailable (%s); calls miss until it answers", self._where, self._last_error)
        self._maybe_restart(now)

    def _warn(self, now: float, msg: str, *args: Any) -> None:
        """Log at most once per warn_interval_s: an outage must not flood the log with one line per call."""
        if now - self._last_warning < self.settings.warn_interval_s:
            self._unwarned += 1
            return
        if self._unwarned:
            msg += f" ({self._unwarned} more failures since the last warning)"
        self._last_warning, self._unwarned = now, 0
        logger.warning(msg, *args)

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, asyncio.TimeoutError):
            return f"no reply within {self._deadline:g} s"
        return scrub_text(f"{type(exc).__name__}: {exc}", self._secrets)

    def _maybe_restart(self, now: float) -> None:
        """Embedded only: start the server again in the background; the failing call does not wait."""
        if self._embedded_dir is None or not self.settings.auto_restart or self._client is None:
            return
        if (self._restart_task and not self._restart_task.done()) or now - self._last_restart < self.settings.retry_interval_s:
            return
        self._last_restart = now
        self._restart_task = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        try:
            _, started = await asyncio.to_thread(
                embedded_valkey.ensure_running, self._embedded_dir, self.settings.max_memory)
        except Exception as exc:  # noqa: BLE001 - logged; calls keep missing, the next failure retries
            self._warn(time.monotonic(), "cannot restart the %s: %s", self._where, exc)
            return
        if started:
            logger.warning("restarted the %s (empty)", self._where)
        self._down_until = 0.0  # it answers now: let the next call through at once

    # -- CacheProvider --

    def _key(self, key: str) -> str:
        return self._prefix + codec.check_key(key)

    def _decode(self, data: bytes | None) -> tuple[bool, Any]:
        """``(hit, value)``, counting the lookup."""
        if data is None:
            self._misses += 1
            return False, None
        try:
            value = codec.decode(data)
        except ValueError as exc:  # a foreign or corrupt value under our prefix: a miss, not a failure
            self._misses += 1
            self._errors += 1
            self._warn(time.monotonic(), "unreadable value in cache %s: %s", self._where, exc)
            return False, None
        self._hits += 1
        return True, value

    async def get(self, key: str) -> Any | None:
        name = self._key(key)
        return self._decode(await self._call(lambda c: c.get(name), None))[1]

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        unique = list(dict.fromkeys(codec.check_key(k) for k in keys))  # a repeated key counts once
        if not unique:
            return {}
        values = await self._call(lambda c: c.mget([self._prefix + k for k in unique]), None)
        if values is None:
            self._misses += len(unique)
            return {}
        found = {k: self._decode(data) for k, data in zip(unique, values)}
        return {k: value for k, (hit, value) in found.items() if hit}

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        name, data = self._key(key), codec.encode(value)
        px = _millis(codec.resolve_ttl(ttl, self.settings.default_ttl_s))
        await self._call(lambda c: c.set(name, data, px=px), None)

    async def set_many(self, items: dict[str, Any], ttl: float | None = None) -> None:
        px = _millis(codec.resolve_ttl(ttl, self.settings.default_ttl_s))
        encoded = {self._key(k): codec.encode(v) for k, v in items.items()}  # a bad value stores nothing
        if not encoded:
            return

        async def write(c: Redis) -> None:
            async with c.pipeline(transaction=False) as pipe:  # one round trip
                for name, data in encoded.items():
                    pipe.set(name, data, px=px)
                await pipe.execute()

        await self._call(write, None)

    async def delete(self, key: str) -> bool:
        name = self._key(key)
        return bool(await self._call(lambda c: c.unlink(name), 0))

    async def exists(self, key: str) -> bool:
        name = self._key(key)
        return bool(await self._call(lambda c: c.exists(name), 0))

    async def clear(self, namespace: str | None = None) -> int:
        pattern = _glob_escape(self._prefix + ("" if namespace is None else f"{namespace}:")) + "*"

        async def remove(c: Redis) -> int:
            # SCAN + UNLINK in batches: never KEYS or FLUSHALL, which would block
            # the server or wipe other applications' keys.
            removed, batch = 0, []
            async for name in c.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) >= 1000:
                    removed += await c.unlink(*batch)
                    batch = []
            return removed + (await c.unlink(*batch) if batch else 0)

        # Many round trips: each still bounded by socket_timeout_s.
        return await self._call(remove, 0, deadline=max(60.0, self._deadline))

    async def get_stats(self) -> dict[str, Any]:
        lookups = self._hits + self._misses
        stats: dict[str, Any] = {
            "hits": self._hits,
            "misses": self._misses,
            "errors": self._errors,
            "hit_ratio": self._hits / lookups if lookups else 0.0,
            "size": None,
            # Counting our prefix would need a full SCAN; INFO keyspace is one
            # cheap call but counts every key of the database, ours or not.
            "size_source": f"INFO keyspace db{self._db} (all keys of the database)",
            "server": self._where,
            "last_error": self._last_error,
        }
        if self._client is not None and time.monotonic() >= self._down_until:
            info, _ = await self._probe(lambda c: c.info("keyspace", "stats", "memory"))
            if info:
                stats["size"] = info.get(f"db{self._db}", {}).get("keys", 0)
                stats["server_evictions"] = info.get("evicted_keys")
                stats["server_used_memory"] = info.get("used_memory")
        return stats

    async def _probe(self, op: Callable[[Redis], Awaitable[T]]) -> tuple[T | None, str | None]:
        """Monitoring calls: not counted as call errors; the failure's description instead."""
        try:
            return await asyncio.wait_for(op(self._client), self._deadline), None
        except _SERVER_ERRORS as exc:
            return None, self._describe(exc)

    async def health_check(self) -> dict[str, Any]:
        try:
            if self._client is None:
                return {"status": "unhealthy", "reason": "not initialized or closed"}
            started = time.perf_counter()
            _, reason = await self._probe(lambda c: c.ping())
            if reason is not None:
                self._last_error = reason
                self._maybe_restart(time.monotonic())  # heals an idle replica's server too
                return {"status": "unhealthy", "reason": reason, "server": self._where, "errors": self._errors}
            self._down_until = 0.0  # it answers: calls need not wait out the retry interval
            return {"status": "healthy", "server": self._where, "embedded": self._embedded_dir is not None,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 3)}
        except Exception as exc:  # noqa: BLE001 - a health check reports, never raises
            return {"status": "unhealthy", "reason": scrub_text(f"{type(exc).__name__}: {exc}", self._secrets)}

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if self._restart_task is not None:
            self._restart_task.cancel()
        try:
            await client.aclose()
            if self._embedded_dir is not None:
                # Last one out stops the shared server; with others connected it stays.
                await asyncio.to_thread(embedded_valkey.release, self._embedded_dir, {self._name})
        except Exception as exc:  # noqa: BLE001 - closing must not fail a shutdown
            logger.warning("closing cache %s: %s", self._where, scrub_text(str(exc), self._secrets))


def _millis(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, round(ttl * 1000))


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a SCAN MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _url_secrets(url: str) -> set[str]:
    """The url's password as written and percent-decoded (error texts may show either)."""
    found = secret_values({"url": url})  # the redaction module's rules, short ones left out
    return found | {unquote(s) for s in found}
