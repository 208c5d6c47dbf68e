"""One behavioural suite, run against both caches: they must be interchangeable."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from providers.errors import InvalidRequestError
from providers.interfaces.cache import CacheProvider
from tests.caches.conftest import CACHES, MakeCache

VALUES = [
    {"text": "héllo ✓", "n": 3, "f": 0.1, "ok": True, "none": None, "list": [1, [2, "x"]]},
    [1, 2.5, "three"],
    "plain string",
    42,
    -1.25,
    False,
    b"\x00\xffraw bytes",
    b"",
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
async def test_set_get_round_trip(cache: CacheProvider, value: object) -> None:
    await cache.set("k", value)
    assert await cache.get("k") == value
    assert type(await cache.get("k")) is type(value)


async def test_miss_is_none(cache: CacheProvider) -> None:
    assert await cache.get("absent") is None
    assert await cache.exists("absent") is False


async def test_overwrite(cache: CacheProvider) -> None:
    await cache.set("k", 1)
    await cache.set("k", {"v": 2})
    assert await cache.get("k") == {"v": 2}


async def test_ttl_expiry(cache: CacheProvider) -> None:
    await cache.set("short", "v", ttl=0.2)
    await cache.set("forever", "v")
    assert await cache.get("short") == "v"
    assert await cache.exists("short")
    await asyncio.sleep(0.35)
    assert await cache.get("short") is None
    assert not await cache.exists("short")
    assert await cache.get("forever") == "v"


@pytest.mark.parametrize("kind", CACHES)
async def test_default_ttl(make_cache: MakeCache, kind: str) -> None:
    cache = await make_cache(kind, default_ttl_s=0.2)
    await cache.set("a", 1)
    await cache.set_many({"b": 2})
    await cache.set("c", 3, ttl=30)  # an explicit ttl wins over the default
    await asyncio.sleep(0.35)
    assert await cache.get_many(["a", "b", "c"]) == {"c": 3}


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "10", True])
async def test_bad_ttl_is_the_callers_error(cache: CacheProvider, ttl: object) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await cache.set("k", 1, ttl=ttl)  # type: ignore[arg-type]
    assert err.value.field == "ttl"


async def test_delete_and_exists(cache: CacheProvider) -> None:
    await cache.set("k", "v")
    assert await cache.exists("k")
    assert await cache.delete("k") is True
    assert await cache.delete("k") is False
    assert not await cache.exists("k")
    assert await cache.get("k") is None


async def test_get_many_set_many_with_misses(cache: CacheProvider) -> None:
    await cache.set_many({"a": 1, "b": [2], "c": np.ones(3, dtype=np.float32)})
    got = await cache.get_many(["a", "x", "b", "c", "y", "a"])
    assert set(got) == {"a", "b", "c"}
    assert got["a"] == 1 and got["b"] == [2]
    np.testing.assert_array_equal(got["c"], np.ones(3, dtype=np.float32))
    assert await cache.get_many([]) == {}
    assert await cache.get_many(["nope"]) == {}


async def test_set_many_with_ttl(cache: CacheProvider) -> None:
    await cache.set_many({"a": 1, "b": 2}, ttl=0.2)
    assert await cache.get_many(["a", "b"]) == {"a": 1, "b": 2}
    await asyncio.sleep(0.35)
    assert await cache.get_many(["a", "b"]) == {}


async def test_set_many_with_a_bad_value_stores_nothing(cache: CacheProvider) -> None:
    with pytest.raises(InvalidRequestError):
        await cache.set_many({"good": 1, "bad": object()})
    assert await cache.get("good") is None


async def test_namespaces_clear(cache: CacheProvider) -> None:
    await cache.set_many({"a:1": 1, "a:2": 2, "b:1": 3, "ab:1": 4, "a": 5, "a:x:y": 6})
    assert await cache.clear("a") == 3  # a:1, a:2, a:x:y
    assert await cache.get_many(["a:1", "a:2", "a:x:y"]) == {}
    assert await cache.get_many(["b:1", "ab:1", "a"]) == {"b:1": 3, "ab:1": 4, "a": 5}
    assert await cache.clear("none") == 0
    assert await cache.clear() == 3
    assert await cache.get_many(["b:1", "ab:1", "a"]) == {}


async def test_namespace_with_glob_characters(cache: CacheProvider) -> None:
    await cache.set_many({"n*:1": 1, "nx:1": 2, "n[a]:1": 3, "na:1": 4})
    assert await cache.clear("n*") == 1
    assert await cache.clear("n[a]") == 1
    assert await cache.get_many(["nx:1", "na:1"]) == {"nx:1": 2, "na:1": 4}


async def test_stats_count_hits_and_misses(cache: CacheProvider) -> None:
    await cache.set_many({"a": 1, "b": 2})
    await cache.get("a")
    await cache.get("zz")
    await cache.get_many(["a", "b", "x", "y"])
    stats = await cache.get_stats()
    assert (stats["hits"], stats["misses"]) == (3, 3)
    assert stats["hit_ratio"] == pytest.approx(0.5)
    assert stats["size"] >= 2  # Redis: every key of the database (see RedisCache.get_stats)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64])
@pytest.mark.parametrize("shape", [(384,), (3, 4), (), (0,), (2, 0, 3)])
async def test_numpy_round_trip_is_exact(cache: CacheProvider, dtype: type, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    arr = np.asarray(rng.standard_normal(shape) * 1e6).astype(dtype)
    await cache.set("vec", arr)
    got = await cache.get("vec")
    assert isinstance(got, np.ndarray)
    assert got.dtype == arr.dtype and got.shape == arr.shape
    assert got.tobytes() == arr.tobytes()  # bit for bit, NaN and -0.0 included


async def test_numpy_special_floats_and_layout(cache: CacheProvider) -> None:
    arr = np.array([[np.nan, -0.0, np.inf], [1e-45, -np.inf, 3.4e38]], dtype=np.float32)
    await cache.set("a", arr.T)  # not C-contiguous
    await cache.set("big-endian", arr.astype(">f8"))
    got = await cache.get("a")
    assert got.tobytes() == np.ascontiguousarray(arr.T).tobytes()
    be = await cache.get("big-endian")
    assert be.dtype == np.dtype(">f8") and be.tobytes() == arr.astype(">f8").tobytes()


async def test_returned_arrays_are_private_copies(cache: CacheProvider) -> None:
    arr = np.zeros(4, dtype=np.float32)
    await cache.set("v", arr)
    arr[0] = 1  # the caller's array changes after set ...
    got = await cache.get("v")
    got[1] = 2  # ... and the caller writes into what get returned
    np.testing.assert_array_equal(await cache.get("v"), np.zeros(4, dtype=np.float32))


@pytest.mark.parametrize("value", [object(), {1, 2}, np.array([object()]), {"v": np.ones(2)}, 2**70],
                         ids=["object", "set", "object-array", "nested-array", "huge-int"])
async def test_uncacheable_value_is_the_callers_error(cache: CacheProvider, value: object) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await cache.set("k", value)
    assert err.value.field == "value"


async def test_numpy_scalars_inside_json(cache: CacheProvider) -> None:
    await cache.set("k", {"score": np.float32(0.5), "n": np.int64(3)})
    assert await cache.get("k") == {"score": 0.5, "n": 3}


@pytest.mark.parametrize("key", ["", None, 3])
async def test_bad_key(cache: CacheProvider, key: object) -> None:
    with pytest.raises(InvalidRequestError):
        await cache.get(key)  # type: ignore[arg-type]


async def test_health_and_double_close(cache: CacheProvider) -> None:
    assert (await cache.health_check())["status"] == "healthy"
    await cache.close()
    await cache.close()


async def test_concurrent_calls(cache: CacheProvider) -> None:
    await asyncio.gather(*(cache.set(f"k{i}", i) for i in range(200)))
    got = await asyncio.gather(*(cache.get(f"k{i}") for i in range(200)))
    assert got == list(range(200))


# -- the memory cache's bounds --

async def test_lru_eviction_by_entries(make_cache: MakeCache) -> None:
    cache = await make_cache("memory", max_entries=3)
    await cache.set_many({"a": 1, "b": 2, "c": 3})
    await cache.get("a")  # a is now the most recently used
    await cache.set("d", 4)  # evicts b, the least recently used
    assert await cache.get_many(["a", "b", "c", "d"]) == {"a": 1, "c": 3, "d": 4}
    stats = await cache.get_stats()
    assert stats["size"] == 3 and stats["evictions"] == 1


async def test_lru_eviction_by_bytes(make_cache: MakeCache) -> None:
    from providers.caches import codec

    size = len(codec.encode(b"x" * 100))
    cache = await make_cache("memory", max_bytes=3 * size)
    for k in "abc":
        await cache.set(k, b"x" * 100)
    assert (await cache.get_stats())["bytes"] == 3 * size
    await cache.get("a")
    await cache.set("d", b"y" * 100)  # one too many bytes: b goes
    assert set(await cache.get_many(["a", "b", "c", "d"])) == {"a", "c", "d"}
    await cache.set("e", b"z" * (2 * size - 1))  # encoded: the room of two; a and c go
    assert set(await cache.get_many(["a", "c", "d", "e"])) == {"d", "e"}
    stats = await cache.get_stats()
    assert stats["evictions"] == 3 and stats["bytes"] <= 3 * size


async def test_value_larger_than_the_cache_is_not_kept(make_cache: MakeCache) -> None:
    cache = await make_cache("memory", max_bytes=1000)
    await cache.set("k", b"small")
    await cache.set("k", b"x" * 2000)
    assert await cache.get("k") is None  # neither the new value nor the stale old one
    assert (await cache.get_stats())["bytes"] == 0


async def test_expired_entries_leave_the_stats(make_cache: MakeCache) -> None:
    cache = await make_cache("memory")
    await cache.set("a", 1, ttl=0.1)
    await cache.set("b", 2)
    await asyncio.sleep(0.2)
    stats = await cache.get_stats()
    assert stats["size"] == 1 and stats["expired"] == 1


@pytest.mark.parametrize("kind", CACHES)
async def test_config_errors_name_the_key(make_cache: MakeCache, kind: str) -> None:
    from providers.errors import ConfigError

    with pytest.raises(ConfigError, match=r"config\.default_ttl_s"):
        await make_cache(kind, default_ttl_s=-1)
    with pytest.raises(ConfigError, match=r"config\.bogus"):
        await make_cache(kind, bogus=1)


@pytest.mark.parametrize("kind", CACHES)
def test_any_number_of_replicas(kind: str) -> None:
    from tests.caches.conftest import cache_class

    assert cache_class(kind).max_replicas({}) is None
