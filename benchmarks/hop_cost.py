#!/usr/bin/env python
"""Where a served pgvector search spends its CPU, process by process.

vector_search.py says how fast each path is; this says why. 8 clients search
pgvector (5,000 clustered 384-d vectors, ef_search 100) for ``--seconds`` on
each path, and the CPU time every process on the machine used meanwhile is
divided by the searches:

    direct   the provider class in this process (psycopg; no Ray)
    python   ProviderRegistry(direct=True): one hop to the provider replica
    router   the Python API through the router replica: two hops
    http     POST /v1/vector_stores/{name}/search (aiohttp + orjson as the client)

Output (last line, JSON): per path, searches/s, CPU ms per search by process
(``client`` is this process), their sum, cores busy, and for the Python paths
how many searches each merged provider call carried. ``--spy DIR`` also records
py-spy profiles (raw collapsed stacks) of this process and the replicas.
Measured here: docs/benchmarks.md "Vector search" (the by-value table).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._timeline import free_port  # noqa: E402
from benchmarks.vector_search import DIM, PG, clustered, fill, timed_searches  # noqa: E402

PATHS = ("direct", "python", "router", "http")
# Process kinds, by what their command line holds; first match wins.
KINDS = (("RegistryRouter", "router replica"), ("vector_stores", "provider replica"), ("ServeReplica", "other replicas"),
         ("ServeController", "serve controller"), ("haproxy", "haproxy"), ("postgres", "postgresql"),
         ("raylet", "raylet"), ("gcs_server", "gcs"))


def cpu_by_process() -> dict[int, tuple[str, float]]:
    import psutil

    out = {}
    for p in psutil.process_iter(["pid", "cmdline", "name"]):
        try:
            t = p.cpu_times()
            cmd = " ".join(p.info["cmdline"] or []) or (p.info["name"] or "")
            out[p.info["pid"]] = (cmd, t.user + t.system)
        except Exception:  # gone meanwhile, or not ours to read
            continue
    return out


def cpu_per_unit(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                 kind_of: Callable[[int, str], str], units: int, elapsed: float) -> tuple[dict[str, float], float, float]:
    """CPU between two `cpu_by_process` snapshots, by process kind: ({kind: ms per unit}, largest
    first; ms per unit in all; cores busy). Processes not in both snapshots are left out."""
    by_kind: dict[str, float] = {}
    for pid, (cmd, cpu) in after.items():
        if pid in before and cpu > before[pid][1]:
            kind = kind_of(pid, cmd)
            by_kind[kind] = by_kind.get(kind, 0.0) + cpu - before[pid][1]
    per_unit = {k: round(v / units * 1000, 3) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])}
    return per_unit, round(sum(by_kind.values()) / units * 1000, 3), round(sum(by_kind.values()) / elapsed, 2)


def kind_of(pid: int, cmd: str) -> str:
    if pid == os.getpid():
        return "client"
    return next((kind for marker, kind in KINDS if marker in cmd), "other")


async def measure(path: str, search, queries, seconds: float, spy: Path | None) -> dict:
    from providers.registry.coalescing import Coalescer

    await timed_searches(search, queries, 8, min_seconds=1.0)  # warm: connections, pools, first calls
    coalescers = [o for o in gc.get_objects() if isinstance(o, Coalescer)]
    merged_before = [(c.flushes, c.merged_calls) for c in coalescers]
    spies = []
    if spy is not None:
        for pid, (cmd, _) in cpu_by_process().items():
            kind = kind_of(pid, cmd)
            if kind in ("client", "router replica", "provider replica"):
                out = spy / f"{path}-{kind.replace(' ', '-')}-{pid}.txt"
                spies.append(subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid), "-d", str(int(seconds)),
                     "-r", "200", "-f", "raw", "-o", str(out), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    before = cpu_by_process()
    start = time.perf_counter()
    searches = (await timed_searches(search, queries, 8, min_seconds=seconds))["searches"]
    elapsed = time.perf_counter() - start
    after = cpu_by_process()
    for s in spies:
        s.wait()
    per_search, per_search_all, cores_busy = cpu_per_unit(before, after, kind_of, searches, elapsed)
    flushes = sum(c.flushes - f for c, (f, _) in zip(coalescers, merged_before))
    merged = sum(c.merged_calls - m for c, (_, m) in zip(coalescers, merged_before))
    out = {"searches_per_s": round(searches / elapsed, 1),
           "cpu_ms_per_search": per_search, "cpu_ms_per_search_all": per_search_all, "cores_busy": cores_busy}
    if path == "python" and flushes:
        out["searches_per_provider_call"] = round(merged / flushes, 2)
    return out


async def run(args: argparse.Namespace, work: Path) -> dict:
    import numpy as np

    from providers.registry.config import parse_config
    from providers.vector_stores import embedded_postgres
    from providers.vector_stores.pgvector import PgVectorStore
    from serve_app import ProviderRegistry, ProviderType, provider_registry
    from serve_app.main import ensure_ray, start_registry

    data, queries = clustered(5_000, seed=1), clustered(200, seed=2)
    config = {"data_dir": str(work / "pg"), "table_name": "bench", "dimension": DIM, "max_batch_size": 1000}
    store = PgVectorStore()
    await store.initialize({**config, "index": {"type": "none"}})
    await fill(store, data)
    await store.create_index({"type": "hnsw"})
    await store.create_index({"ef_search": 100})
    spy = Path(args.spy) if args.spy else None
    if spy is not None:
        spy.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    session = None
    try:
        if "direct" in args.paths:
            results["direct"] = await measure("direct", lambda q: store.search_similar(q, top_k=10), queries,
                                              args.seconds, spy)
        if set(args.paths) - {"direct"}:
            import aiohttp
            import orjson

            ensure_ray(address="local", num_cpus=4)
            http = start_registry(parse_config({"registry": {"app_name": "registry", "http_port": free_port()}}))["http"]
            await provider_registry.register_provider(ProviderType.VECTOR_STORE, "hop-cost", PG,
                                                      {**config, "index": {"ef_search": 100}},
                                                      deployment={"num_cpus": 1, "max_ongoing_requests": 256})
            one_hop = await ProviderRegistry(direct=True).get_provider(ProviderType.VECTOR_STORE, "hop-cost")
            routed = await provider_registry.get_provider(ProviderType.VECTOR_STORE, "hop-cost")
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8))
            url = f"{http}/v1/vector_stores/hop-cost/search"

            async def over_http(q: np.ndarray) -> list[SimpleNamespace]:
                body = orjson.dumps({"embedding": q, "top_k": 10}, option=orjson.OPT_SERIALIZE_NUMPY)
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
                    r.raise_for_status()
                    return [SimpleNamespace(id=h["id"]) for h in orjson.loads(await r.read())["results"]]

            searches = {"python": lambda q: one_hop.search_similar(q, top_k=10),
                        "router": lambda q: routed.search_similar(q, top_k=10), "http": over_http}
            for path in args.paths:
                if path != "direct":
                    results[path] = await measure(path, searches[path], queries, args.seconds, spy)
    finally:
        if session is not None:
            await session.close()
        await store.close()
        try:
            import ray
            from ray import serve

            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
        finally:
            embedded_postgres.stop(config["data_dir"])
    direct = results.get("direct", {}).get("searches_per_s")
    for path, r in results.items():
        if direct and path != "direct":
            r["share_of_direct"] = round(r["searches_per_s"] / direct, 3)
    return {"benchmark": "hop_cost", "store": "pgvector", "n": 5_000, "dim": DIM, "ef_search": 100,
            "concurrency": 8, "seconds": args.seconds, "by_path": results,
            "spy_dir": str(spy) if spy is not None else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 s per path (about a minute in all)")
    p.add_argument("--seconds", type=float, default=None, help="load per path (default 8, 3 with --quick)")
    p.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    p.add_argument("--spy", default=None, metavar="DIR", help="py-spy profiles of the client and replicas here")
    args = p.parse_args()
    args.seconds = args.seconds or (3.0 if args.quick else 8.0)
    args.paths = [x.strip() for x in args.paths.split(",") if x.strip()]
    unknown = set(args.paths) - set(PATHS)
    if unknown:
        p.error(f"--paths: unknown {sorted(unknown)}; choose from {', '.join(PATHS)}")
    work = Path(tempfile.mkdtemp(prefix="hopcost", dir="/tmp"))
    try:
        out = asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
