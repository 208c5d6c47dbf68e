"""Graph operations on the embedded engine (Ladybug): insert rate, 1-hop and 3-hop
neighbourhoods, in process and through the registry, in the same run.

A random graph of N entities (100k; 10k with --quick) and 3N relationships
(each entity points at 3 others, uniformly: the hardest case for a 3-hop
neighbourhood, which then reaches a few dozen to hundreds of entities).

    insert_per_s          entities + relationships stored per second, batches of 1000, in process
    hop1_p50_ms / hop3_p50_ms           get_connected_entities depth 1 / 3, in process
    hop1_p50_ms_registry / hop3_...     the same through the seed's Python API (router -> engine replica)
    registry_over_direct  hop1_p50_ms_registry / hop1_p50_ms

Ladybug has one writer process, so the in-process phase closes the database
before the registry's replica opens it. Usage: python benchmarks/graph_ops.py
[--quick]; prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._timeline import free_port  # noqa: E402

ENGINE = "providers.graph.ladybug.LadybugGraphEngine"


async def timed(fn, starts: list[str]) -> dict:
    latencies = []
    await fn(starts[0])  # warm up
    for s in starts:
        t = time.perf_counter()
        await fn(s)
        latencies.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99))}


async def direct(path: str, n: int, probes: list[str]) -> dict:
    from providers.graph.ladybug import LadybugGraphEngine
    from providers.interfaces.graph_engines import Entity, Relationship

    engine = LadybugGraphEngine()
    await engine.initialize({"path": path})
    rng = np.random.default_rng(7)
    start = time.perf_counter()
    bar = tqdm(total=n * 4, unit="item", desc="graph inserts", file=sys.stderr)  # n entities + 3n relationships
    for s in range(0, n, 1000):
        bar.update(min(1000, n - s))
        await engine.create_entities([Entity(id=f"e{i}", name=f"entity {i}", entity_type="Thing")
                                      for i in range(s, min(s + 1000, n))])
    targets = rng.integers(0, n, size=(n, 3))
    rels = [Relationship(id=f"r{i}_{k}", source_id=f"e{i}", target_id=f"e{int(targets[i, k])}",
                         relationship_type="LINKS") for i in range(n) for k in range(3)]
    for s in range(0, len(rels), 1000):
        await engine.create_relationships(rels[s:s + 1000])
        bar.update(len(rels[s:s + 1000]))
    bar.close()
    insert_s = time.perf_counter() - start
    hop1 = await timed(lambda e: engine.get_connected_entities(e, None, 1), probes)
    hop3 = await timed(lambda e: engine.get_connected_entities(e, None, 3), probes)
    sizes = [len(await engine.get_connected_entities(e, None, 3)) for e in probes[:20]]
    await engine.close()
    return {"insert_per_s": (n + len(rels)) / insert_s, "hop1": hop1, "hop3": hop3,
            "hop3_mean_entities": float(np.mean(sizes))}


async def through_registry(path: str, probes: list[str]) -> dict:
    from serve_app import ProviderType, provider_registry

    await provider_registry.register_provider(ProviderType.GRAPH_ENGINE, "bench-graph", ENGINE, {"path": path},
                                              deployment={"num_cpus": 1})
    engine = await provider_registry.get_provider(ProviderType.GRAPH_ENGINE, "bench-graph")
    hop1 = await timed(lambda e: engine.get_connected_entities(e, None, 1), probes)
    hop3 = await timed(lambda e: engine.get_connected_entities(e, None, 3), probes)
    await provider_registry.delete_provider(ProviderType.GRAPH_ENGINE, "bench-graph")
    return {"hop1": hop1, "hop3": hop3}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10,000 entities, 100 probes")
    p.add_argument("--n", type=int, default=None)
    args = p.parse_args()
    n = args.n or (10_000 if args.quick else 100_000)
    probes = [f"e{i}" for i in np.random.default_rng(3).integers(0, n, 100 if args.quick else 300)]
    work = Path(tempfile.mkdtemp(prefix="gbench", dir="/tmp"))
    path = str(work / "graph.db")
    try:
        d = asyncio.run(direct(path, n, probes))
        from providers.registry.config import parse_config
        from serve_app.main import ensure_ray, start_registry

        ensure_ray(address="local", num_cpus=4)
        start_registry(parse_config({"registry": {"app_name": "registry", "http_port": free_port()}}))
        r = asyncio.run(through_registry(path, probes))
    finally:
        import ray

        if ray.is_initialized():
            from ray import serve

            serve.shutdown()
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    out = {"benchmark": "graph_ops", "entities": n, "relationships": 3 * n, "probes": len(probes),
           "insert_per_s": round(d["insert_per_s"], 1),
           "hop1_p50_ms": round(d["hop1"]["p50_ms"], 2), "hop3_p50_ms": round(d["hop3"]["p50_ms"], 2),
           "hop1_p99_ms": round(d["hop1"]["p99_ms"], 2), "hop3_p99_ms": round(d["hop3"]["p99_ms"], 2),
           "hop3_mean_entities": round(d["hop3_mean_entities"], 1),
           "hop1_p50_ms_registry": round(r["hop1"]["p50_ms"], 2), "hop3_p50_ms_registry": round(r["hop3"]["p50_ms"], 2),
           "registry_over_direct": round(r["hop1"]["p50_ms"] / d["hop1"]["p50_ms"], 2),
           "registry_over_direct_hop3": round(r["hop3"]["p50_ms"] / d["hop3"]["p50_ms"], 2)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
