"""The reliability report's crash-after-acknowledge rows (issue 16, part 4).

Writers keep writing over HTTP to each store of the report's registry
(vector documents into ``docs``, graph episodes through the ``people``
manager into the Ladybug engine ``g``, ``memory.store`` into ``docs``); after
``before`` acknowledged writes each comes a kill -9, and once ``after`` more
were acknowledged after it, every acknowledged item is read back
(tests/crash.py). ``lost`` must be 0 for every store.

The embedding cache (Valkey) promises nothing across a crash of its server:
its row counts the entries the crash dropped (``durability.entries_dropped``)
and keeps ``lost`` for what was promised (0), and ``failed`` counts embedding
calls that failed meanwhile (a cache failure must never fail one).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from tests import crash

NAME = "crash after acknowledge"


def extra_providers(store: str, embedder: str, engine: str) -> dict[str, Any]:
    """The graph manager and the memory tool the rows write through (added to the report's registry)."""
    small = {"num_cpus": 0.1}
    return {
        "graph_managers": {"providers": {"people": {
            "class": "providers.graph.temporal_manager.TemporalGraphManager",
            "config": {"graph_engine": engine}, "depends_on": [f"graph_engines/{engine}"], "deployment": small}}},
        "tools": {"providers": {"memory.store": {
            "class": "providers.tools.memory.MemoryStoreTool",
            "config": {"vector_store": store, "embedder": embedder},
            "depends_on": [f"vector_stores/{store}", f"embeddings/{embedder}"], "deployment": small}}},
    }


def _row(crash_name: str, r: dict[str, Any]) -> dict[str, Any]:
    return {"fault": f"{NAME}: {r['store']}, {crash_name}", "requests": r["requests"], "failed": r["failed"],
            "failed_with_fallback": 0, "recovered_after_s": r["recovered_after_s"], "lost": r["lost"],
            "writes_acknowledged": r["writes_acknowledged"], "writes_unverified": r["writes_unverified"],
            "error_p99_ms": None, "max_latency_ms": r["max_latency_ms"], "first_error": r["first_error"],
            "durability": {"store": r["store"], "crash": crash_name, "promise": PROMISES.get(r["store"].split(" ")[0], "")}}


PROMISES = {
    "vector": "committed with synchronous_commit=on (WAL flushed) before the 2xx",
    "graph": "every engine write committed (Ladybug fdatasyncs its WAL per commit) before the 2xx",
    "memory.store": "the vector store's commit before the 2xx",
    "embedding": "none: a cache",
}


async def rows(http: str, app: str, pg_dir: Path, valkey_dir: Path, quick: bool) -> list[dict[str, Any]]:
    stores = [crash.documents("docs"), crash.episodes("people"), crash.memories("memory.store", "docs")]
    n = 10 if quick else 30
    out = []

    def kill_replicas() -> None:
        for prefix in ("vector_stores--docs--", "graph_engines--g--", "tools--memory.store--"):
            crash.kill_replicas(f"{app}--{prefix}")

    for crash_name, targets, kill in (
            ("kill -9 of the replicas", stores, kill_replicas),
            ("kill -9 of PostgreSQL", [stores[0], stores[2]], lambda: crash.kill_postgres(pg_dir))):
        results = await crash.crash_after_acks(http, targets, kill, before=n, after=n)
        out += [_row(crash_name, r) for r in results]
    out.append(await valkey_row(http, valkey_dir, n))
    return out


async def valkey_row(http: str, valkey_dir: Path, n: int) -> dict[str, Any]:
    """Embeddings (each cached by the router) before and after a kill -9 of the Valkey server."""
    import httpx

    from providers.caches import embedded_valkey

    sock = embedded_valkey.socket_path(valkey_dir.resolve())

    def keys() -> int:
        return int(embedded_valkey._command(sock, "DBSIZE").decode() or 0)

    failed, first_error, requests = 0, None, 0
    async with httpx.AsyncClient(timeout=60) as client:
        async def embed(count: int) -> None:
            nonlocal failed, first_error, requests
            for _ in range(count):
                requests += 1
                r = await client.post(http + "/v1/embeddings",
                                      json={"model": "primary", "input": [f"cached {uuid.uuid4().hex}"]})
                if r.status_code != 200:
                    failed += 1
                    first_error = first_error or f"{r.status_code} {r.text[:160]}"

        await embed(n)
        before = keys()
        t = time.monotonic()
        crash.kill_valkey(valkey_dir)
        await embed(n)  # the cache is down or empty meanwhile: misses, never failures
        await asyncio.get_running_loop().run_in_executor(None, embedded_valkey.ensure_running, valkey_dir, "256mb")
        recovered = round(time.monotonic() - t, 2)
        after = keys()
    return {"fault": f"{NAME}: embedding cache (Valkey), kill -9 of the server", "requests": requests,
            "failed": failed, "failed_with_fallback": failed, "recovered_after_s": recovered, "lost": 0,
            "writes_acknowledged": 0, "writes_unverified": 0, "error_p99_ms": None, "max_latency_ms": None,
            "first_error": first_error,
            "durability": {"store": "embedding cache (Valkey)", "crash": "kill -9 of the server",
                           "promise": PROMISES["embedding"], "entries_before": before,
                           "entries_dropped": before - after, "entries_after_restart": after}}
