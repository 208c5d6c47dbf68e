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

On a cluster (docs/benchmarks.md#on-a-cluster), with ``--address``:

- no ``--config``: a Ladybug engine deployed there under an app name of the
  run's own (its file under /tmp/gbench-<tag> on its node), filled through the
  registry (``insert_per_s_registry``), hops through the Python API and over
  HTTP (``GET /v1/graph/{name}/neighbors/{id}``); no in-process phase;
- ``--config providers.yaml --provider graph_engines/NAME``: that engine as the
  file configures it; an engine with a ``path`` gets a file of the run's own, a
  server's engine gets ids ``bench-<tag>-...``, deleted at the end;
- ``--registry-url URL --provider graph_engines/NAME``: a running graph, read
  only: probes from ``GET /v1/graph/{name}/entities``, hops over HTTP.
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

from benchmarks._target import (  # noqa: E402
    add_target_args,
    deploy_chosen,
    describe_environment,
    finish,
    mode_of,
    open_target,
    run_tag,
    target_fields,
    write_result,
)
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


async def timed_http(client, url: str, starts: list[str], depth: int) -> dict:
    async def hop(e: str) -> None:
        r = await client.get(f"{url}/{e}", params={"depth": depth})
        r.raise_for_status()
    return await timed(hop, starts)


async def served_graph(target, name: str, n: int, probes: list[str], prefix: str, write: bool) -> dict:
    """Fill through the registry (``write``), hops through the Python API and HTTP; delete what was written
    when the engine is not a file of the run's own."""
    import httpx

    from providers.interfaces.graph_engines import Entity, Relationship
    from serve_app import ProviderRegistry, ProviderType

    out: dict = {"engine": name}
    url = f"{target.url}/v1/graph/{name}/neighbors"
    if write:
        engine = await ProviderRegistry(app_name=target.app_name).get_provider(ProviderType.GRAPH_ENGINE, name)
        rng = np.random.default_rng(7)
        targets = rng.integers(0, n, size=(n, 3))
        start = time.perf_counter()
        for s in range(0, n, 1000):
            await engine.create_entities([Entity(id=f"{prefix}e{i}", name=f"entity {i}", entity_type="Thing")
                                          for i in range(s, min(s + 1000, n))])
        rels = [Relationship(id=f"{prefix}r{i}_{k}", source_id=f"{prefix}e{i}",
                             target_id=f"{prefix}e{int(targets[i, k])}", relationship_type="LINKS")
                for i in range(n) for k in range(3)]
        for s in range(0, len(rels), 1000):
            await engine.create_relationships(rels[s:s + 1000])
        out["insert_per_s_registry"] = round((n + len(rels)) / (time.perf_counter() - start), 1)
        probes = [f"{prefix}{p}" for p in probes]
        for depth in (1, 3):
            r = await timed(lambda e, d=depth: engine.get_connected_entities(e, None, d), probes)
            out[f"hop{depth}_p50_ms_registry"] = round(r["p50_ms"], 2)
            out[f"hop{depth}_p99_ms_registry"] = round(r["p99_ms"], 2)
    async with httpx.AsyncClient(timeout=120) as client:
        if not write:  # a running graph: probes are entities it has
            r = await client.get(f"{target.url}/v1/graph/{name}/entities", params={"limit": len(probes)})
            r.raise_for_status()
            probes = [e["id"] for e in r.json()["entities"]]
            if not probes:
                raise SystemExit(f"graph {name!r} at {target.url} has no entities to start hops from")
        for depth in (1, 3):
            r = await timed_http(client, url, probes, depth)
            out[f"hop{depth}_p50_ms_http"] = round(r["p50_ms"], 2)
            out[f"hop{depth}_p99_ms_http"] = round(r["p99_ms"], 2)
    out["probes"] = len(probes)
    return out


def own_engine(tag: str):
    from providers.registry.config import parse_config

    return lambda port: parse_config({"registry": {"http_port": port}, "graph_engines": {"providers": {
        "bench-graph": {"class": ENGINE, "config": {"path": f"/tmp/gbench-{tag}/graph.db"},
                        "deployment": {"num_cpus": 1}}}}})


def on_target(args: argparse.Namespace, n: int, probes: list[str]) -> dict:
    tag = run_tag()
    target = open_target(args, need_ray=mode_of(args) != "running")
    if target.mode != "own" and target.ptype != "graph_engines":
        raise SystemExit(f"graph_ops measures a graph engine: --provider graph_engines/<name>, got {args.provider}")
    private = {"file": False}

    def adapt(config) -> None:  # a file engine gets a file of the run's own; a server keeps its database
        spec = config.graph_engines.providers[target.name]
        if "path" in spec.config or "ladybug" in spec.class_path.lower():
            spec.config["path"] = f"/tmp/gbench-{tag}/graph.db"
            private["file"] = True

    name = "bench-graph" if target.mode == "own" else target.name
    prefix = "" if target.mode == "own" else f"bench-{tag}-"
    environment: dict = {}
    try:
        deploy_chosen(target, args, own_engine(tag), adapt=adapt)
        environment = describe_environment(target)
        out = asyncio.run(served_graph(target, name, n, probes, prefix, write=target.mode != "running"))
        if target.mode == "config" and not private["file"]:
            asyncio.run(delete_written(target, name, n, prefix))
            out["deleted_written"] = True
    finally:
        left = finish(target)
    return {"benchmark": "graph_ops", "quick": args.quick, **target_fields(target, left),
            "entities": n if target.mode != "running" else None, **out, "environment": environment}


async def delete_written(target, name: str, n: int, prefix: str) -> None:
    """A server's graph keeps nothing of the run: every entity it wrote, relationships with them."""
    from serve_app import ProviderRegistry, ProviderType

    engine = await ProviderRegistry(app_name=target.app_name).get_provider(ProviderType.GRAPH_ENGINE, name)
    for i in range(n):
        await engine.delete_entity(f"{prefix}e{i}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10,000 entities, 100 probes")
    p.add_argument("--n", type=int, default=None)
    add_target_args(p, default_provider="graph_engines/graph")
    args = p.parse_args()
    n = args.n or (10_000 if args.quick else 100_000)
    probes = [f"e{i}" for i in np.random.default_rng(3).integers(0, n, 100 if args.quick else 300)]
    if mode_of(args) != "own" or args.address:
        out = on_target(args, n, probes)
        write_result(args.out, "graph_ops", out)
        print(json.dumps(out))
        return 0
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
