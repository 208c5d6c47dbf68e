"""Acknowledged means durable (issue 16, part 4), on the session's real stores.

Writers keep writing over HTTP (vector documents into ``memories``, graph
episodes through ``people`` into the Ladybug engine, ``memory.store`` into
``journal``); after ten acknowledged writes each, a kill -9 (the replicas
holding the data, then the embedded PostgreSQL); once ten more were
acknowledged after the crash, every acknowledged item is read back and none
may be missing (tests/crash.py). The Valkey cache promises nothing across a
crash of its server, and the test holds it to what it does promise: its
contents survive a crash of the replica, and a crash of the server costs
misses, never a failed call.

Triggers are counts of answered writes, never a time window; the only waits
are deadlines for conditions.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest

from serve_app import ProviderType, provider_registry
from tests import crash

pytestmark = pytest.mark.integration

WAIT_S = 120
STORES = [crash.documents("memories"), crash.episodes("people"), crash.memories("memory.store", "journal")]


def _print(rows: list[dict]) -> None:
    for r in rows:  # shown with -rP, and on failure: what each crash cost
        print(f"{r['store']}: {r['writes_acknowledged']} acknowledged, {r['lost']} lost, {r['failed']} failed "
              f"(first: {r['first_error']}), writing again {r['recovered_after_s']} s after the crash")


def _assert_nothing_lost(rows: list[dict]) -> None:
    _print(rows)
    for r in rows:
        assert r["lost"] == 0 and r["writes_unverified"] == 0, r


def test_postgres_promises_a_flushed_commit(registry):
    """What a 2xx rests on, as the store reports it: its sessions commit synchronously on an fsyncing server."""
    for store in ("memories", "journal"):
        stats = httpx.get(f"{registry['http']}/v1/vector_stores/{store}/stats", timeout=60).json()
        assert stats["durability"] == {"synchronous_commit": "on", "fsync": "on"}, stats


async def test_kill_9_of_the_replicas_holding_the_data_loses_no_acknowledged_write(registry):
    app = registry["config"].registry.app_name

    def kill() -> None:
        for prefix in ("vector_stores--memories--", "graph_engines--ladybug--", "tools--memory.store--"):
            crash.kill_replicas(f"{app}--{prefix}")

    rows = await crash.crash_after_acks(registry["http"], STORES, kill, timeout_s=WAIT_S)
    _assert_nothing_lost(rows)


async def test_kill_9_of_postgresql_loses_no_acknowledged_write(registry, pg_data_dir):
    stores = [s for s in STORES if "episodes" not in s.label]  # the graph is not in PostgreSQL
    rows = await crash.crash_after_acks(registry["http"], stores, lambda: crash.kill_postgres(pg_data_dir),
                                        timeout_s=WAIT_S)
    _assert_nothing_lost(rows)


async def test_valkey_crashes_cost_cache_entries_never_a_call(registry, tmp_path):
    """The cache's promise is none across a crash (docs/reliability.md): what it must keep is
    serving. A crash of the replica that started the server takes the server too (Ray's raylet
    SIGTERMs a dead worker's process group: src/ray/raylet/node_manager.cc, DisconnectClient,
    process_group_cleanup_enabled); a crash of the server empties it. Neither may fail a call."""
    name = "durable-valkey"
    data_dir = tmp_path / "valkey"
    await provider_registry.register_provider(
        ProviderType.CACHE, name, "providers.caches.redis_cache.RedisCache", {"data_dir": str(data_dir)},
        deployment={"num_cpus": 0.1, "health_check_period_s": 1})  # Serve notices a dead replica at its next check
    try:
        cache = await provider_registry.get_provider(ProviderType.CACHE, name)
        items = {f"k{i}": np.full(4, i, dtype=np.float32) for i in range(20)}
        await cache.set_many(items)
        assert len(await cache.get_many(list(items))) == len(items)
        for what, kill in (("replica", lambda: crash.kill_replicas(f"{registry['config'].registry.app_name}"
                                                                   f"--cache--{name}--")),
                           ("server", lambda: crash.kill_valkey(data_dir))):
            kill()
            kept = await cache.get_many(list(items))  # a miss at worst: never an exception
            print(f"Valkey {what} killed: {len(kept)} of {len(items)} entries kept")
            await _serving_again(cache, what)
            await cache.set_many(items)
    finally:
        await provider_registry.delete_provider(ProviderType.CACHE, name)


async def _serving_again(cache, what: str) -> None:
    """A write then a read that hits: the first replica to notice starts an empty server (auto_restart)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        await cache.set("after", np.ones(4, dtype=np.float32))
        if await cache.get("after") is not None:
            return
        assert time.monotonic() < deadline, f"the cache never served again after its {what}'s crash"
        await asyncio.sleep(0.2)
