"""The route table's home: Ray's GCS key-value store.

Why not the router's memory: a router replica can die and be replaced, and
there may be several replicas; all must agree on the table. Why not the
router's ``user_config``: changing it through imperative ``serve.run`` gives
the app a new random code version (``ray/serve/_private/client.py``:
``version=deployment._version or get_random_string()``), which restarts the
router replicas instead of reconfiguring them. GCS outlives replicas and the
Serve controller, and any process in the cluster can read it.

Two keys per registry app: ``<app>/revision`` (tiny, polled) and
``<app>/table`` (the JSON). Writers put the table first, then the revision,
and only while holding ``<app>/lock`` (`TableStore.locked`): internal_kv has
no compare-and-swap, but put-if-absent is enough for a lock, so two router
replicas changing the table at once cannot lose an update.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from providers.errors import RegistryBusyError
from providers.registry.table import RouteTable

NAMESPACE = "provider_registry"
# How often a router replica checks GCS for a newer table. A miss on an
# unknown name re-reads at once, so a registration is callable through every
# replica immediately; a reload is seen by other replicas within this period.
TABLE_POLL_S = 0.5


def _kv():
    from ray.experimental import internal_kv

    return internal_kv


class TableStore:
    def __init__(self, app_name: str) -> None:
        self.app_name = app_name
        self._table_key = f"{app_name}/table".encode()
        self._revision_key = f"{app_name}/revision".encode()

    def read_revision(self) -> int | None:
        raw = _kv()._internal_kv_get(self._revision_key, namespace=NAMESPACE)
        return int(raw) if raw is not None else None

    def read(self) -> RouteTable | None:
        raw = _kv()._internal_kv_get(self._table_key, namespace=NAMESPACE)
        return RouteTable.from_json(raw) if raw is not None else None

    def write(self, table: RouteTable) -> None:
        kv = _kv()
        kv._internal_kv_put(self._table_key, table.to_json().encode(), overwrite=True, namespace=NAMESPACE)
        kv._internal_kv_put(self._revision_key, str(table.revision).encode(), overwrite=True, namespace=NAMESPACE)

    def clear(self) -> None:
        kv = _kv()
        kv._internal_kv_del(self._table_key, namespace=NAMESPACE)
        kv._internal_kv_del(self._revision_key, namespace=NAMESPACE)

    @asynccontextmanager
    async def locked(self, stale_s: float, wait_s: float) -> AsyncIterator[None]:
        """Hold the cluster-wide mutation lock of this registry.

        A holder that died leaves the lock behind; one older than ``stale_s``
        (longer than any deploy may take) is broken. Waiting longer than
        ``wait_s`` raises `RegistryBusyError`.
        """
        kv = _kv()
        key = f"{self.app_name}/lock".encode()
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        while True:
            value = json.dumps({"token": token, "at": time.time()}).encode()
            existed = await asyncio.to_thread(kv._internal_kv_put, key, value, False, namespace=NAMESPACE)
            if not existed:
                break
            held = await asyncio.to_thread(kv._internal_kv_get, key, namespace=NAMESPACE)
            if held is not None and time.time() - json.loads(held).get("at", 0) > stale_s:
                await asyncio.to_thread(kv._internal_kv_del, key, namespace=NAMESPACE)
                continue
            if time.monotonic() > deadline:
                raise RegistryBusyError(f"registry {self.app_name!r} is being changed by another caller; try again")
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            held = await asyncio.to_thread(kv._internal_kv_get, key, namespace=NAMESPACE)
            if held is not None and json.loads(held).get("token") == token:
                await asyncio.to_thread(kv._internal_kv_del, key, namespace=NAMESPACE)

    def seed(self, from_config: RouteTable) -> RouteTable:
        """The table to start from: the stored one, unless the config changed.

        Declarative state wins: when the config this registry was started
        with differs from the one the stored table was seeded from, the config
        replaces the table (run-time registrations are dropped). When it is the
        same config (a router replica restarting), run-time changes survive.
        """
        stored = self.read()
        if stored is not None and stored.seed_hash == from_config.seed_hash:
            return stored
        revision = (stored.revision + 1) if stored is not None else 1
        table = from_config.model_copy(update={"revision": revision})
        self.write(table)
        return table

    async def aread_revision(self) -> int | None:
        return await asyncio.to_thread(self.read_revision)

    async def aread(self) -> RouteTable | None:
        return await asyncio.to_thread(self.read)

    async def awrite(self, table: RouteTable) -> None:
        await asyncio.to_thread(self.write, table)


class PerReplicaStore:
    """One JSON value per router replica under ``<app>/<kind>/<replica id>`` in GCS.

    Values of replicas that died stay: what they counted or recorded happened,
    and cluster-wide views must keep it.
    """

    def __init__(self, app_name: str, kind: str) -> None:
        self.prefix = f"{app_name}/{kind}/"

    def write(self, replica_id: str, value: Any) -> None:
        _kv()._internal_kv_put((self.prefix + replica_id).encode(), json.dumps(value).encode(),
                               overwrite=True, namespace=NAMESPACE)

    def read_all(self) -> dict[str, Any]:
        kv = _kv()
        out = {}
        for key in kv._internal_kv_list(self.prefix.encode(), namespace=NAMESPACE):
            raw = kv._internal_kv_get(key, namespace=NAMESPACE)
            if raw is not None:
                out[key.decode()[len(self.prefix):]] = json.loads(raw)
        return out

    def clear(self) -> None:
        kv = _kv()
        for key in kv._internal_kv_list(self.prefix.encode(), namespace=NAMESPACE):
            kv._internal_kv_del(key, namespace=NAMESPACE)


class StatsStore(PerReplicaStore):
    """Each router replica's usage snapshot, under ``<app>/stats/<replica id>``."""

    def __init__(self, app_name: str) -> None:
        super().__init__(app_name, "stats")
