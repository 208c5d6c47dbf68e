"""The route table's store in Ray's GCS: the cross-replica mutation lock."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from deployments.table_store import NAMESPACE, TableStore
from providers.errors import RegistryBusyError

pytestmark = pytest.mark.integration


async def test_the_lock_admits_one_holder_at_a_time(registry):
    store = TableStore("lock-test")
    order: list[str] = []

    async def holder(name: str) -> None:
        async with store.locked(stale_s=600, wait_s=120):  # waits bounded by a hang, not by a busy machine
            order.append(f"{name} in")
            await asyncio.sleep(0.2)
            order.append(f"{name} out")

    await asyncio.gather(*(holder(n) for n in "abcd"))
    # never two inside at once: every "in" is followed by its own "out"
    assert all(order[i].split()[0] == order[i + 1].split()[0] for i in range(0, len(order), 2)), order


async def test_a_busy_lock_times_out_with_a_registry_error(registry):
    store = TableStore("lock-test-busy")
    async with store.locked(stale_s=60, wait_s=1):
        with pytest.raises(RegistryBusyError, match="being changed"):
            async with store.locked(stale_s=60, wait_s=0.3):
                pass


async def test_a_dead_holders_lock_is_broken_when_stale(registry):
    from ray.experimental import internal_kv

    store = TableStore("lock-test-stale")
    internal_kv._internal_kv_put(b"lock-test-stale/lock", json.dumps({"token": "dead", "at": time.time() - 100}).encode(),
                                 overwrite=True, namespace=NAMESPACE)
    async with store.locked(stale_s=50, wait_s=1):
        pass
    assert internal_kv._internal_kv_get(b"lock-test-stale/lock", namespace=NAMESPACE) is None
