"""The memory pipeline end to end: memory.search latency, cold and warm, and rerank throughput.

On the embedded defaults (MiniLM, PostgreSQL + pgvector, the
embedding-similarity reranker, the memory tools), over HTTP:

    search_p50_ms_cold / _warm   memory.search at concurrency 1; cold: the
                                 router's embedding cache off (every query and
                                 every reranked candidate is embedded); warm:
                                 cache on, the same queries a second time
    search_p99_ms_c16(_warm)     the same at 16 concurrent clients
    search_qps_c16(_warm)        searches/s at 16 concurrent clients
    rerank_pairs_per_s_served    POST /v1/rerank, 32 documents a request, 8
                                 concurrent, cache off (distinct documents)
    rerank_pairs_per_s_inprocess the same reranker class over MiniLM in this
                                 process, same documents, same concurrency
    top3_hit_rate                paraphrase (STS, gold >= 4) found in the top 3
    rerank_by_backend            per --backend name, in this process, same documents:
                                 similarity_pairs_per_s (the reranker above over MiniLM
                                 on that backend) and cross_encoder_pairs_per_s (a
                                 MiniLM-L6-sized cross-encoder: the packaged MiniLM's
                                 weights under a fresh one-label head, so its scores
                                 mean nothing and only its speed is measured; no real
                                 cross-encoder ships in a package)

The served pipeline runs MiniLM on the first --backend (default torch).
Starts the embedded PostgreSQL, Ray and the registry (twice: cache off, then
on, over the same database) and stops them. Usage:
python benchmarks/memory_pipeline.py [--quick] [--backend torch,onnx,openvino,...];
prints one JSON object last.

On a cluster (docs/benchmarks.md#on-a-cluster), with ``--address``, one
deployment and two passes of the same searches (``passes``: the first fills
the embedding cache where the registry has one on, the second reads it):

- no ``--config``: the built-in pipeline (cache on) under an app name of the
  run's own, its PostgreSQL under /tmp/mbench-<tag> on its node;
- ``--config providers.yaml --provider tools/memory.search``: the file's tool
  with what it depends on and ``memory.store`` (``--store-tool``), its vector
  store writing to a table of the run's own; what was stored is deleted;
- ``--registry-url URL``: read only: memory.search with the STS queries (no hit
  rate: the memories are not the benchmark's) and POST /v1/rerank (``--reranker``).
The in-process rerank figures run only in a local run.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._backends import BACKENDS  # noqa: E402
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

STS = ROOT.parent / "shared" / "data" / "stsbenchmark" / "sts-test.csv"
MINILM = "providers.embeddings.sentence_transformers.SentenceTransformerProvider"
def sts_pairs() -> tuple[list[tuple[str, str]], list[str]]:
    """Paraphrase pairs (gold >= 4, first sentence unique) and every sentence, for rerank documents."""
    pairs, seen, sentences = [], set(), []
    with open(STS, encoding="utf-8") as fh:
        for cols in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            score, a, b = float(cols[4]), cols[5], cols[6]
            sentences += [a, b]
            if score >= 4.0 and a not in seen and a != b:
                seen.add(a)
                pairs.append((a, b))
    return pairs, list(dict.fromkeys(sentences))


def config(port: int, pg_dir: str, cache: bool, backend: dict) -> dict:
    tool = {"vector_store": "memories", "embedder": "minilm", "reranker": "similarity"}
    deps = ["vector_stores/memories", "embeddings/minilm", "rerankers/similarity"]
    return {
        "registry": {"app_name": "registry", "http_port": port, "embedding_cache": {"enabled": cache}},
        "embeddings": {"providers": {"minilm": {
            "class": MINILM, "config": {"num_threads": 2, **backend},
            "deployment": {"num_cpus": 1, "max_ongoing_requests": 256}}}},
        "vector_stores": {"providers": {"memories": {
            "class": "providers.vector_stores.pgvector.PgVectorStore",
            "config": {"data_dir": pg_dir, "table_name": "memories", "dimension": 384},
            "embedder": "minilm", "deployment": {"num_cpus": 0.1, "max_ongoing_requests": 256}}}},
        "rerankers": {"providers": {"similarity": {
            "class": "providers.rerankers.embedding_similarity.EmbeddingSimilarityReranker",
            "config": {"embedder": "minilm"}, "depends_on": ["embeddings/minilm"],
            "deployment": {"num_cpus": 0.1, "max_ongoing_requests": 256}}}},
        "tools": {"providers": {
            "memory.store": {"class": "providers.tools.memory.MemoryStoreTool", "config": tool, "depends_on": deps,
                             "deployment": {"num_cpus": 0.1, "max_ongoing_requests": 256}},
            "memory.search": {"class": "providers.tools.memory.MemorySearchTool", "config": tool, "depends_on": deps,
                              "deployment": {"num_cpus": 0.1, "max_ongoing_requests": 256}}}},
    }


async def run_load(client: httpx.AsyncClient, url: str, bodies: list[dict], concurrency: int) -> dict:
    """Every body once, ``concurrency`` in flight: latencies, throughput, answers in order."""
    latencies, answers, errors = [], [None] * len(bodies), 0
    next_i = 0

    async def worker() -> None:
        nonlocal next_i, errors
        while next_i < len(bodies):
            i, next_i = next_i, next_i + 1
            t = time.perf_counter()
            r = await client.post(url, json=bodies[i])
            latencies.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                errors += 1
            else:
                answers[i] = r.json()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "per_s": len(bodies) / elapsed, "errors": errors, "answers": answers}


async def searches(base: str, pairs: list[tuple[str, str]], concurrency: int, prefix: str = "",
                   tool: str = "memory.search") -> dict:
    bodies = [{"query": b, "top_k": 3} for _, b in pairs]
    async with httpx.AsyncClient(timeout=120) as client:
        out = await run_load(client, f"{base}/v1/tools/{tool}", bodies, concurrency)
    hits = sum(1 for i, a in enumerate(out.pop("answers"))
               if a and f"{prefix}m{i}" in [h["id"] for h in a["result"]["results"]])
    return {**out, "top3_hit_rate": hits / len(pairs)}


async def rerank_served(base: str, docs: list[str], query: str, requests: int, model: str = "similarity") -> dict:
    bodies = [{"model": model, "query": query, "documents": docs[(i * 32) % len(docs):][:32]}
              for i in range(requests)]
    async with httpx.AsyncClient(timeout=120) as client:
        out = await run_load(client, base + "/v1/rerank", bodies, 8)
    return {"pairs_per_s": out["per_s"] * 32, "errors": out["errors"]}


async def rerank_inprocess(docs: list[str], query: str, requests: int, backend: dict | None = None) -> float:
    from providers.embeddings.sentence_transformers import SentenceTransformerProvider
    from providers.interfaces.rerankers import RerankCandidate
    from providers.registry.dependencies import LocalRegistry
    from providers.rerankers.embedding_similarity import EmbeddingSimilarityReranker
    from providers.types import ProviderType

    embedder = SentenceTransformerProvider()
    await embedder.initialize({"num_threads": 2, **(backend or {})})
    reranker = EmbeddingSimilarityReranker()
    reranker.registry = LocalRegistry({(ProviderType.EMBEDDING, "minilm"): embedder})
    await reranker.initialize({"embedder": "minilm"})
    batches = [[RerankCandidate(id=str(j), content=t) for j, t in enumerate(docs[(i * 32) % len(docs):][:32])]
               for i in range(requests)]
    await reranker.rerank(query, batches[0])  # warm up
    sem = asyncio.Semaphore(8)

    async def one(batch: list) -> None:
        async with sem:
            await reranker.rerank(query, batch)

    start = time.perf_counter()
    await asyncio.gather(*(one(b) for b in batches))
    rate = requests * 32 / (time.perf_counter() - start)
    await embedder.close()
    return rate


def minilm_cross_encoder(directory: Path) -> str:
    """The packaged MiniLM's weights under a fresh one-label head: a cross-encoder of real size (6 layers,
    384 wide) for speed figures; its scores mean nothing."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from providers.embeddings.sentence_transformers import packaged_model_path

    torch.manual_seed(0)
    source = packaged_model_path()
    AutoModelForSequenceClassification.from_pretrained(source, num_labels=1).save_pretrained(str(directory))
    AutoTokenizer.from_pretrained(source).save_pretrained(str(directory))
    return str(directory)


async def cross_encoder_inprocess(model_dir: str, docs: list[str], query: str, requests: int,
                                  backend: dict, cache_dir: str) -> float:
    from providers.interfaces.rerankers import RerankCandidate
    from providers.rerankers.cross_encoder import CrossEncoderReranker

    reranker = CrossEncoderReranker()
    extra = {"export_cache_dir": cache_dir} if backend["backend"] != "torch" else {}
    await reranker.initialize({"model_name": model_dir, "device": "cpu", "num_threads": 2, **backend, **extra})
    batches = [[RerankCandidate(id=str(j), content=t) for j, t in enumerate(docs[(i * 32) % len(docs):][:32])]
               for i in range(requests)]
    await reranker.rerank(query, batches[0])  # warm up
    start = time.perf_counter()
    for batch in batches:  # one at a time: the model's own rate, no batching across calls
        await reranker.rerank(query, batch)
    rate = requests * 32 / (time.perf_counter() - start)
    await reranker.close()
    return rate


def rerank_by_backend(names: list[str], docs: list[str], query: str, requests: int, work: Path) -> dict:
    ce_dir = minilm_cross_encoder(work / "minilm-cross-encoder")
    out = {}
    for name in names:
        out[name] = {
            "similarity_pairs_per_s": round(asyncio.run(rerank_inprocess(docs, query, requests, BACKENDS[name])), 1),
            "cross_encoder_pairs_per_s": round(asyncio.run(cross_encoder_inprocess(
                ce_dir, docs, query, requests, BACKENDS[name], str(work / "exports"))), 1),
        }
        print(json.dumps({"backend": name, **out[name]}), flush=True)
    return out


def start(pg_dir: str, cache: bool, backend: dict) -> str:
    from providers.registry.config import parse_config
    from serve_app.main import start_registry

    port = free_port()
    return start_registry(parse_config(config(port, pg_dir, cache, backend)))["http"]


async def store(base: str, pairs: list[tuple[str, str]], prefix: str = "", tool: str = "memory.store") -> None:
    async with httpx.AsyncClient(timeout=300) as client:
        for s in range(0, len(pairs), 100):
            memories = [{"id": f"{prefix}m{i}", "content": a} for i, (a, _) in enumerate(pairs[s:s + 100], start=s)]
            r = await client.post(f"{base}/v1/tools/{tool}", json={"memories": memories, "source": "sts"})
            r.raise_for_status()


def search_figures(run: dict, hit_rate: bool = True) -> dict:
    return {"p50_ms": round(run["p50_ms"], 2), "p99_ms": round(run["p99_ms"], 2), "per_s": round(run["per_s"], 1),
            "errors": run["errors"], "top3_hit_rate": round(run["top3_hit_rate"], 4) if hit_rate else None}


def own_pipeline(tag: str, backend: dict):
    from providers.registry.config import parse_config

    return lambda port: parse_config(config(port, f"/tmp/mbench-{tag}/pg", True, backend))


def on_target(args: argparse.Namespace, pairs: list[tuple[str, str]], sentences: list[str], query: str,
              rerank_requests: int) -> dict:
    tag = run_tag()
    target = open_target(args, need_ray=mode_of(args) != "running")
    if target.mode == "own":
        target.ptype, target.name = "tools", "memory.search"
    elif target.ptype != "tools":
        raise SystemExit(f"memory_pipeline measures a search tool: --provider tools/<name>, got {args.provider}")
    write = target.mode != "running"
    prefix = f"bench-{tag}-"
    out: dict = {"benchmark": "memory_pipeline", "quick": args.quick, "memories": len(pairs) if write else None,
                 "searches": len(pairs)}
    environment: dict = {}
    try:
        deploy_chosen(target, args, own_pipeline(tag, BACKENDS[args.backend.split(",")[0]]),
                      adapt=private_tables(tag), also=(("tools", args.store_tool),))
        environment = describe_environment(target)
        if write:
            t = time.perf_counter()
            asyncio.run(store(target.url, pairs, prefix, tool=args.store_tool))
            out["store_per_s"] = round(len(pairs) / (time.perf_counter() - t), 1)
        passes = []
        for _ in range(2):
            c1 = asyncio.run(searches(target.url, pairs, 1, prefix, tool=target.name))
            c16 = asyncio.run(searches(target.url, pairs, 16, prefix, tool=target.name))
            passes.append({"c1": search_figures(c1, write), "c16": search_figures(c16, write)})
        served = asyncio.run(rerank_served(target.url, sentences, query, rerank_requests, args.reranker))
        stats = httpx.get(target.url + "/v1/stats", timeout=30).json().get("embedding_cache")
        if write and target.mode == "config":
            asyncio.run(delete_stored(target, len(pairs), prefix))
            out["deleted_stored"] = True
    finally:
        left = finish(target)
    out.update({**target_fields(target, left), "passes": passes, "embedding_cache": stats,
                "rerank_pairs_per_s_served": round(served["pairs_per_s"], 1),
                "errors": served["errors"] + sum(p[c]["errors"] for p in passes for c in ("c1", "c16")),
                "inprocess_skipped": "the in-process rerank figures run only in a local run",
                "environment": environment})
    return out


async def delete_stored(target, n: int, prefix: str) -> None:
    from serve_app import ProviderRegistry, ProviderType

    registry = ProviderRegistry(app_name=target.app_name)
    for name in target.config_doc.get("vector_stores", {}).get("providers", {}):
        store_handle = await registry.get_provider(ProviderType.VECTOR_STORE, name)
        await store_handle.delete_documents([f"{prefix}m{i}" for i in range(n)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="100 memories and searches, 20 rerank requests")
    p.add_argument("--backend", default="torch",
                   help=f"comma-separated MiniLM backends, the first serves the pipeline: {', '.join(BACKENDS)}")
    p.add_argument("--store-tool", default="memory.store", help="on a target: the tool that stores memories")
    p.add_argument("--reranker", default="similarity", help="on a target: the reranker POST /v1/rerank loads")
    add_target_args(p, default_provider="tools/memory.search")
    args = p.parse_args()
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    if not backends or any(b not in BACKENDS for b in backends):
        p.error(f"--backend: choose from {', '.join(BACKENDS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    first = BACKENDS[backends[0]]
    pairs, sentences = sts_pairs()
    pairs = pairs[:100] if args.quick else pairs
    rerank_requests = 20 if args.quick else 80
    query = "A man is playing a musical instrument."
    if mode_of(args) != "own" or args.address:
        result = on_target(args, pairs, sentences, query, rerank_requests)
        write_result(args.out, "memory_pipeline", result)
        print(json.dumps(result))
        return 0
    work = Path(tempfile.mkdtemp(prefix="mbench", dir="/tmp"))
    pg_dir = str(work / "pg")
    out: dict = {"benchmark": "memory_pipeline", "backend": backends[0], "memories": len(pairs),
                 "searches": len(pairs)}
    from providers.vector_stores import embedded_postgres
    from serve_app.main import ensure_ray

    try:
        ensure_ray(address="local", num_cpus=4)
        from ray import serve

        base = start(pg_dir, cache=False, backend=first)
        asyncio.run(store(base, pairs))
        cold1 = asyncio.run(searches(base, pairs, 1))
        cold16 = asyncio.run(searches(base, pairs, 16))
        served = asyncio.run(rerank_served(base, sentences, query, rerank_requests))
        serve.shutdown()

        base = start(pg_dir, cache=True, backend=first)
        asyncio.run(searches(base, pairs, 16))  # fills the cache: queries and candidates
        warm1 = asyncio.run(searches(base, pairs, 1))
        warm16 = asyncio.run(searches(base, pairs, 16))
        stats = httpx.get(base + "/v1/stats", timeout=30).json()["embedding_cache"]
        serve.shutdown()
        inprocess = asyncio.run(rerank_inprocess(sentences, query, rerank_requests, first))
        out.update({
            "search_p50_ms_cold": round(cold1["p50_ms"], 2), "search_p50_ms_warm": round(warm1["p50_ms"], 2),
            "search_p99_ms_c16": round(cold16["p99_ms"], 2), "search_p99_ms_c16_warm": round(warm16["p99_ms"], 2),
            "search_p50_ms_c16": round(cold16["p50_ms"], 2), "search_p50_ms_c16_warm": round(warm16["p50_ms"], 2),
            "search_qps_c16": round(cold16["per_s"], 1), "search_qps_c16_warm": round(warm16["per_s"], 1),
            "top3_hit_rate": round(cold1["top3_hit_rate"], 4),
            "top3_hit_rate_warm": round(warm1["top3_hit_rate"], 4),
            "errors": cold1["errors"] + cold16["errors"] + warm1["errors"] + warm16["errors"] + served["errors"],
            "embedding_cache": stats,
            "rerank_pairs_per_s_served": round(served["pairs_per_s"], 1),
            "rerank_pairs_per_s_inprocess": round(inprocess, 1),
            "rerank_by_backend": rerank_by_backend(backends, sentences, query, rerank_requests, work),
        })
    finally:
        import ray

        if ray.is_initialized():
            from ray import serve

            serve.shutdown()
            ray.shutdown()
        embedded_postgres.stop(pg_dir)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
