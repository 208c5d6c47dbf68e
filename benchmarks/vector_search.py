"""Vector search: recall and speed of each store, directly and through the registry.

For pgvector (HNSW at ef_search 40 and 100) and Qdrant (local mode), on N
384-d vectors with exact ground truth by brute force:

    recall_at_10   share of the true 10 nearest found, averaged over queries
    qps_direct     searches/s calling the provider class in this process
                   (psycopg / qdrant-client; no Ray), ``--concurrency`` at once
    qps_registry   the same searches through the seed's Python API (router
                   deployment -> provider deployment -> database)
    qps_python     the same API routed in this process, one hop
                   (ProviderRegistry(direct=True) -> provider deployment)
    qps_http       the same searches as HTTP (POST /v1/vector_stores/{name}/search
                   with the query vector; ingress -> router -> provider), through
                   ``--concurrency`` keep-alive connections
    p50_ms/p99_ms  latency through the registry
    insert_per_s   documents/s stored by the provider class in batches of 1000
                   (pgvector: binary COPY + one upsert per batch)

The data are clustered (a mixture of Gaussians on the unit sphere, like
real sentence embeddings, which occupy a small part of the space); uniform
random 384-d vectors would be the pathological case for every graph index.
Queries come from the same distribution but are not stored points.

Starts the embedded PostgreSQL, Ray and a registry, and stops all three.
Usage: python benchmarks/vector_search.py [--quick] [--n N] [--queries Q]
Prints one JSON object as its last line.

On a cluster (docs/benchmarks.md#on-a-cluster), with ``--address``:

- no ``--config``: both stores of the built-in config are deployed there under
  an app name of the run's own, filled through the registry (``insert_per_s_registry``)
  and measured through it; the in-process phase, which would measure the driver's
  machine, is skipped (``direct: null``);
- ``--config providers.yaml --provider vector_stores/NAME``: that store as the
  file configures it, with a table/collection of the run's own (``bench_<tag>``:
  never a table the file's registry uses); its documents are deleted at the end;
- ``--registry-url URL --provider vector_stores/NAME``: a running store, read
  only: searches over HTTP with query vectors of ``--dim`` (no recall: the data
  are not the benchmark's).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._target import (  # noqa: E402
    add_target_args,
    deploy_chosen,
    describe_environment,
    finish,
    mode_of,
    open_target,
    private_tables,
    run_tag,
    target_fields,
    write_result,
)
from benchmarks._timeline import free_port  # noqa: E402

DIM = 384
PG = "providers.vector_stores.pgvector.PgVectorStore"
QDRANT = "providers.vector_stores.qdrant.QdrantVectorStore"


CENTERS, SIGMA = 200, 0.06


def clustered(n: int, seed: int) -> np.ndarray:
    """``n`` points around the same ``CENTERS`` (seed 0) with per-axis noise ``SIGMA``.

    Noise of norm about 1.2 around unit centers: a query's nearest stored
    point has cosine about 0.5 (reported as ``mean_top1_cos``), the range
    MiniLM gives for related sentences.
    """
    c = np.random.default_rng(0).standard_normal((CENTERS, DIM)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    x = c[rng.integers(0, CENTERS, n)] + SIGMA * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ground_truth(data: np.ndarray, queries: np.ndarray, k: int = 10) -> tuple[list[set[int]], float]:
    """Exact top ``k`` of every query by brute force, and the mean cosine of the nearest."""
    out, top1 = [], []
    for start in range(0, len(queries), 256):
        sims = queries[start:start + 256] @ data.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        out += [set(row.tolist()) for row in top]
        top1 += sims.max(axis=1).tolist()
    return out, float(np.mean(top1))


def recall(hits: list[list[str]], truth: list[set[int]]) -> float:
    # ids are "<i>" or "<prefix>-<i>" (a run's own ids on a shared store)
    return float(np.mean([len({int(h.rsplit("-", 1)[-1]) for h in hs} & t) / 10 for hs, t in zip(hits, truth)]))


# Each timed phase runs at least this long (the queries again from the start once all
# were asked): 200 queries alone took 0.2-0.4 s, and QPS moved by 10% between runs.
MIN_SECONDS = 2.0


async def timed_searches(search, queries: np.ndarray, concurrency: int, min_seconds: float | None = None) -> dict:
    """Every query once, then again from the start until ``min_seconds`` (`MIN_SECONDS`)
    passed, ``concurrency`` in flight; the first pass's results in query order, latencies
    of all, QPS of all."""
    min_seconds = MIN_SECONDS if min_seconds is None else min_seconds
    results: list[list[str]] = [[] for _ in queries]
    latencies: list[float] = []
    next_i = 0
    start = 0.0

    def more() -> bool:
        return next_i < len(queries) or time.perf_counter() - start < min_seconds

    async def worker() -> None:
        nonlocal next_i
        while more():
            i, next_i = next_i, next_i + 1
            t = time.perf_counter()
            hits = await search(queries[i % len(queries)])
            latencies.append((time.perf_counter() - t) * 1000)
            if i < len(queries):
                results[i] = [h.id for h in hits]

    await search(queries[0])  # warm up (connections, first replica call)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"hits": results, "qps": len(latencies) / elapsed, "searches": len(latencies),
            "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99))}


async def fill(store, data: np.ndarray, prefix: str = "") -> float:
    from tqdm import tqdm

    from providers.interfaces.vector_stores import VectorDocument

    start = time.perf_counter()
    with tqdm(total=len(data), unit="vec", desc="insert", file=sys.stderr) as bar:
        for s in range(0, len(data), 1000):
            await store.store_documents([VectorDocument(id=f"{prefix}{i}", content="", embedding=data[i])
                                         for i in range(s, min(s + 1000, len(data)))])
            bar.update(min(1000, len(data) - s))
    return len(data) / (time.perf_counter() - start)


async def direct_phase(kind: str, config: dict, data: np.ndarray, queries: np.ndarray, truth: list[set[int]],
                       concurrency: int, ef_values: list[int | None],
                       min_seconds: float = MIN_SECONDS) -> tuple[float, float, dict]:
    """Fill through the provider class and measure it; returns (insert/s, index build s, {ef: result})."""
    if kind == "pgvector":
        from providers.vector_stores.pgvector import PgVectorStore as cls
    else:
        from providers.vector_stores.qdrant import QdrantVectorStore as cls
    store = cls()
    # pgvector: fill without an index, then build it (one pass, as the docs advise for bulk loads)
    await store.initialize({**config, **({"index": {"type": "none"}} if kind == "pgvector" else {})})
    insert_rate = await fill(store, data)
    t = time.perf_counter()
    if kind == "pgvector":
        await store.create_index({"type": "hnsw"})
    build_s = time.perf_counter() - t
    out = {}
    for ef in ef_values:
        if ef is not None:
            await store.create_index({"ef_search": ef})  # same index; new connections get the setting
        run = await timed_searches(lambda q: store.search_similar(q, top_k=10), queries, concurrency, min_seconds)
        out[ef] = {"recall_at_10": recall(run["hits"], truth), "qps_direct": run["qps"],
                   "p50_direct_ms": run["p50_ms"]}
    await store.close()
    return insert_rate, build_s, out


def http_search(client, url: str):
    """A search over HTTP answering what ``store.search_similar`` answers (objects with ``id``)."""
    from types import SimpleNamespace

    async def search(q: np.ndarray) -> list[SimpleNamespace]:
        r = await client.post(url, json={"embedding": q.tolist(), "top_k": 10})
        r.raise_for_status()
        return [SimpleNamespace(id=h["id"]) for h in r.json()["results"]]
    return search


async def registry_phase(name: str, class_path: str, config: dict, queries: np.ndarray,
                         truth: list[set[int]], concurrency: int, ef_values: list[int | None], http: str,
                         min_seconds: float = MIN_SECONDS) -> dict:
    import httpx

    from serve_app import ProviderRegistry, ProviderType, provider_registry

    await provider_registry.register_provider(ProviderType.VECTOR_STORE, name, class_path, config,
                                              deployment={"num_cpus": 1, "max_ongoing_requests": 256})
    out = {}
    for ef in ef_values:
        if ef is not None:
            cfg = {**config, "index": {**config.get("index", {}), "ef_search": ef}}
            await provider_registry.swap_provider(ProviderType.VECTOR_STORE, name, config=cfg)
        store = await provider_registry.get_provider(ProviderType.VECTOR_STORE, name)
        run = await timed_searches(lambda q, store=store: store.search_similar(q, top_k=10), queries, concurrency, min_seconds)
        one_hop = await ProviderRegistry(direct=True).get_provider(ProviderType.VECTOR_STORE, name)
        fast = await timed_searches(lambda q, store=one_hop: store.search_similar(q, top_k=10), queries,
                                    concurrency, min_seconds)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            web = await timed_searches(http_search(client, f"{http}/v1/vector_stores/{name}/search"), queries,
                                       concurrency, min_seconds)
        out[ef] = {"recall_registry": recall(run["hits"], truth), "qps_registry": run["qps"],
                   "p50_ms": run["p50_ms"], "p99_ms": run["p99_ms"],
                   "recall_python": recall(fast["hits"], truth), "qps_python": fast["qps"],
                   "p50_python_ms": fast["p50_ms"],
                   "recall_http": recall(web["hits"], truth), "qps_http": web["qps"], "p50_http_ms": web["p50_ms"]}
    await provider_registry.delete_provider(ProviderType.VECTOR_STORE, name)
    return out


async def run(args: argparse.Namespace, work: Path) -> dict:
    from providers.registry.config import parse_config
    from providers.vector_stores import embedded_postgres
    from serve_app.main import ensure_ray, start_registry

    data = clustered(args.n, seed=1)
    queries = clustered(args.queries, seed=2)
    truth, top1 = ground_truth(data, queries)
    pg_dir = str(work / "pg")
    pg_config = {"data_dir": pg_dir, "table_name": "bench", "dimension": DIM, "max_batch_size": 1000}
    qd_config = {"path": str(work / "qdrant"), "collection_name": "bench", "dimension": DIM,
                 "max_batch_size": 1000}
    results, inserts, builds = [], {}, {}
    try:
        pg_insert, pg_build, pg_direct = await direct_phase("pgvector", pg_config, data, queries, truth,
                                                            args.concurrency, [40, 100], args.min_seconds)
        qd_insert, _, qd_direct = await direct_phase("qdrant", qd_config, data, queries, truth,
                                                     args.concurrency, [None], args.min_seconds)
        inserts.update(pgvector=pg_insert, qdrant=qd_insert)
        builds["pgvector_hnsw_s"] = pg_build

        ensure_ray(address="local", num_cpus=4)
        http = start_registry(parse_config({"registry": {"app_name": "registry", "http_port": free_port(),
                                                          "router": {"merge_reads": args.merge_reads}}}))["http"]
        pg_reg = await registry_phase("bench-pg", PG, {**pg_config, "index": {"ef_search": 40}}, queries, truth,
                                      args.concurrency, [None, 100], http, args.min_seconds)
        qd_reg = await registry_phase("bench-qdrant", QDRANT, qd_config, queries, truth, args.concurrency, [None],
                                      http, args.min_seconds)
        for ef, reg_key in ((40, None), (100, 100)):
            results.append({"store": "pgvector", "ef_search": ef, "default": ef == 100,
                            **pg_direct[ef], **pg_reg[reg_key]})
        results.append({"store": "qdrant", "ef_search": None, "default": True, **qd_direct[None], **qd_reg[None],
                        "note": "local mode searches exhaustively (no HNSW in qdrant-client's local engine)"})
    finally:
        try:
            import ray
            from ray import serve

            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
        finally:
            embedded_postgres.stop(pg_dir)
    for r in results:
        r["registry_share_of_direct"] = round(r["qps_registry"] / r["qps_direct"], 3)
        r["python_share_of_direct"] = round(r["qps_python"] / r["qps_direct"], 3)
        r["http_share_of_direct"] = round(r["qps_http"] / r["qps_direct"], 3)
        for key in ("recall_at_10", "recall_registry", "recall_python", "recall_http", "qps_direct", "qps_registry",
                    "qps_python", "qps_http", "p50_ms", "p99_ms", "p50_direct_ms", "p50_python_ms", "p50_http_ms"):
            r[key] = round(r[key], 4 if "recall" in key else 2)
    return {"benchmark": "vector_search", "n": args.n, "dim": DIM, "queries": args.queries,
            "data": {"kind": "clustered", "centers": CENTERS, "sigma": SIGMA, "mean_top1_cos": round(top1, 3)},
            "concurrency": args.concurrency, "min_seconds": args.min_seconds, "results": results,
            "insert_per_s": round(inserts["pgvector"], 1),
            "insert_per_s_by_store": {k: round(v, 1) for k, v in inserts.items()},
            "index_build_s": {k: round(v, 2) for k, v in builds.items()},
            "ingress": ingress_in_effect(), "merge_reads": args.merge_reads,
            "targets": {"recall_at_10_default": ">= 0.95", "qps_python_share": ">= 0.70", "qps_http_share": ">= 0.40"}}


def own_stores(tag: str):
    """The built-in config for a cluster: both stores, data under /tmp/vbench-<tag> on the node
    each replica lands on (no shared disk assumed)."""
    from providers.registry.config import parse_config

    base = f"/tmp/vbench-{tag}"
    deployment = {"num_cpus": 1, "max_ongoing_requests": 256}

    def build(port: int):
        return parse_config({"registry": {"http_port": port}, "vector_stores": {"providers": {
            "bench-pg": {"class": PG, "deployment": deployment,
                         "config": {"data_dir": f"{base}/pg", "table_name": "bench", "dimension": DIM,
                                    "max_batch_size": 1000, "index": {"ef_search": 100}}},
            "bench-qdrant": {"class": QDRANT, "deployment": deployment,
                             "config": {"path": f"{base}/qdrant", "collection_name": "bench", "dimension": DIM,
                                        "max_batch_size": 1000}}}}})
    return build


async def served_phase(target, name: str, data: np.ndarray, queries: np.ndarray, truth: list[set[int]],
                       concurrency: int, prefix: str, min_seconds: float = MIN_SECONDS) -> dict:
    """Fill through the registry, search through it three ways, delete what was stored."""
    import httpx

    from serve_app import ProviderRegistry, ProviderType

    store = await ProviderRegistry(app_name=target.app_name).get_provider(ProviderType.VECTOR_STORE, name)
    insert = await fill(store, data, prefix)
    try:
        run = await timed_searches(lambda q: store.search_similar(q, top_k=10), queries, concurrency, min_seconds)
        one_hop = await ProviderRegistry(app_name=target.app_name, direct=True).get_provider(
            ProviderType.VECTOR_STORE, name)
        fast = await timed_searches(lambda q: one_hop.search_similar(q, top_k=10), queries, concurrency, min_seconds)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            web = await timed_searches(http_search(client, f"{target.url}/v1/vector_stores/{name}/search"),
                                       queries, concurrency, min_seconds)
    finally:
        for s in range(0, len(data), 1000):  # a store the run did not create keeps only an empty table
            await store.delete_documents([f"{prefix}{i}" for i in range(s, min(s + 1000, len(data)))])
    return {"store": name, "insert_per_s_registry": round(insert, 1),
            "recall_registry": round(recall(run["hits"], truth), 4), "qps_registry": round(run["qps"], 2),
            "p50_ms": round(run["p50_ms"], 2), "p99_ms": round(run["p99_ms"], 2),
            "recall_python": round(recall(fast["hits"], truth), 4), "qps_python": round(fast["qps"], 2),
            "p50_python_ms": round(fast["p50_ms"], 2),
            "recall_http": round(recall(web["hits"], truth), 4), "qps_http": round(web["qps"], 2),
            "p50_http_ms": round(web["p50_ms"], 2), "p99_http_ms": round(web["p99_ms"], 2)}


async def read_only_phase(target, name: str, queries: np.ndarray, concurrency: int,
                          min_seconds: float = MIN_SECONDS) -> dict:
    """A running store: searches over HTTP only, nothing written."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        web = await timed_searches(http_search(client, f"{target.url}/v1/vector_stores/{name}/search"),
                                   queries, concurrency, min_seconds)
    return {"store": name, "recall_http": None, "qps_http": round(web["qps"], 2),
            "p50_http_ms": round(web["p50_ms"], 2), "p99_http_ms": round(web["p99_ms"], 2),
            "results_per_query": round(float(np.mean([len(h) for h in web["hits"]])), 2)}


def run_on_target(args: argparse.Namespace) -> dict:
    """--address, --config or --registry-url: see the module's docstring."""
    tag = run_tag()
    target = open_target(args, need_ray=mode_of(args) != "running")
    if target.ptype != "vector_stores" and target.mode != "own":
        raise SystemExit(f"vector_search measures a vector store: --provider vector_stores/<name>, got {args.provider}")
    queries = clustered(args.queries, seed=2)[:, :args.dim] if args.dim <= DIM else None
    if queries is None:
        raise SystemExit(f"--dim {args.dim}: at most {DIM} (the benchmark's clustered data)")
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    left: list[str] = []
    results: list[dict] = []
    environment: dict = {}
    try:
        deploy_chosen(target, args, own_stores(tag), adapt=private_tables(tag))
        environment = describe_environment(target)
        if target.mode == "running":
            results.append(asyncio.run(read_only_phase(target, target.name, queries, args.concurrency,
                                                           args.min_seconds)))
        else:
            data = clustered(args.n, seed=1)[:, :args.dim]
            data /= np.linalg.norm(data, axis=1, keepdims=True)
            truth, _ = ground_truth(data, queries)
            names = ["bench-pg", "bench-qdrant"] if target.mode == "own" else [target.name]
            for name in names:
                results.append(asyncio.run(served_phase(target, name, data, queries, truth, args.concurrency,
                                                        prefix=f"bench-{tag}-", min_seconds=args.min_seconds)))
    finally:
        left = finish(target)
    return {"benchmark": "vector_search", "quick": args.quick, **target_fields(target, left),
            "n": args.n if target.mode != "running" else None, "dim": args.dim, "queries": args.queries,
            "concurrency": args.concurrency, "min_seconds": args.min_seconds, "results": results,
            "direct": None, "direct_skipped": "the in-process phase runs on the driver only in a local run",
            "ingress": ingress_in_effect() if target.started_ray else "cluster", "environment": environment}


def ingress_in_effect() -> str:
    from serve_app import ingress

    return ingress.chosen()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="5,000 vectors, 200 queries (about a minute)")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--queries", type=int, default=None)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--dim", type=int, default=DIM, help="vector size on a target (the store's dimension)")
    p.add_argument("--no-merge-reads", dest="merge_reads", action="store_false",
                   help="the router sends every search alone (registry.router.merge_reads: false), for comparison")
    add_target_args(p, default_provider="vector_stores/memories")
    p.add_argument("--min-seconds", type=float, default=MIN_SECONDS,
                   help="shortest timed phase: the queries are asked again until it has passed")
    args = p.parse_args()
    args.n = args.n or (5_000 if args.quick else 100_000)
    args.queries = args.queries or (200 if args.quick else 1000)
    if mode_of(args) != "own" or args.address:
        out = run_on_target(args)
        write_result(args.out, "vector_search", out)
        print(json.dumps(out))
        return 0
    work = Path(tempfile.mkdtemp(prefix="vbench", dir="/tmp"))
    try:
        out = asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
