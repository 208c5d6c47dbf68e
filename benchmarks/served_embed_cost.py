#!/usr/bin/env python
"""Where a served one-text embedding request spends its CPU, and what a config change does to it.

embeddings_throughput.py says how fast the served path is; this says where each
request's CPU goes, process by process, and compares variants of the config in
one run, interleaved (this machine's run-to-run spread is ~5%). It deploys
``--config``'s embeddings/minilm (config/providers.yaml: what ``make serve``
runs) with the router's embedding cache off, so every request reaches the
model; loads ``POST /v1/embeddings`` with ``--clients`` clients sending one
text each (wrk when installed, else aiohttp) for ``--seconds``; and divides
each process's CPU time by the requests served.

    --variant 'label:path=value;path=value'   (repeatable) overrides of the config
        'one-stream:embeddings.providers.minilm.config.streams=1'
        'two-routers:registry.router.num_replicas=2'
        'no-batch-wait:embeddings.providers.minilm.deployment.batching.batch_wait_timeout_s=0'
    --repeat N   every variant N times, interleaved

Output, last line JSON: every run (variant, requests/s, p50/p99 ms, errors, CPU
ms per request by process kind, their sum, cores busy) and per variant the
median requests/s. Measured here: docs/benchmarks.md "Backends" (the levers
on the one-text served ratio).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._target import Target, config_subset, write_result  # noqa: E402
from benchmarks.embeddings_throughput import load, sentences  # noqa: E402
from benchmarks.hop_cost import cpu_by_process, cpu_per_unit  # noqa: E402

# Process kinds, by what their command line holds; first match wins.
KINDS = (("RegistryRouter", "router replica"), ("--embeddings--", "provider replica"),
         ("ServeReplica", "other replicas"), ("ServeController", "serve controller"),
         ("bin/haproxy", "haproxy"), ("HAProxyManager", "haproxy manager"), ("raylet", "raylet"),
         ("gcs_server", "gcs"))


def parse_variant(text: str) -> tuple[str, list[tuple[str, Any]]]:
    """``label:path=value;path=value`` -> (label, [(dotted path, YAML value)])."""
    import yaml

    label, _, rest = text.partition(":")
    overrides = []
    for item in filter(None, (part.strip() for part in rest.split(";"))):
        path, eq, value = item.partition("=")
        if not eq or not path.strip():
            raise SystemExit(f"--variant {text!r}: {item!r} is not path=value")
        overrides.append((path.strip(), yaml.safe_load(value)))
    return label.strip() or "default", overrides


def with_overrides(doc: dict, overrides: list[tuple[str, Any]]) -> dict:
    doc = json.loads(json.dumps(doc))  # a copy per run
    for path, value in overrides:
        node = doc
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return doc


def kind_of(cmd: str) -> str:
    return next((kind for marker, kind in KINDS if marker in cmd), "other")


def one_run(target: Target, doc: dict, label: str, body: str, clients: int, seconds: float,
            generator: str) -> dict:
    from providers.net import free_port
    from providers.registry.config import parse_config

    config = parse_config(doc, source=f"variant {label}", interpolate=False)
    config.registry.http_port = free_port()
    target.deploy(config, label="embedcost")
    try:
        url = target.url + "/v1/embeddings"
        load(url, body, min(clients, 4), 1.0, generator)  # connections, the batcher
        load(url, body, clients, 2.0, generator)  # the export cache, pools, first batches
        before = cpu_by_process()
        start = time.perf_counter()
        r = load(url, body, clients, seconds, generator)
        elapsed = time.perf_counter() - start
        after = cpu_by_process()
    finally:
        left = target.remove()
    served = max(r["requests"], 1)
    per_request, per_request_all, cores_busy = cpu_per_unit(before, after, lambda _, cmd: kind_of(cmd), served,
                                                            elapsed)
    out = {"variant": label, "requests_per_s": round(r["requests"] / r["seconds"], 1),
           "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "errors": r["errors"],
           "cpu_ms_per_request": per_request, "cpu_ms_per_request_all": per_request_all, "cores_busy": cores_busy,
           **({"left_deployed": left} if left else {})}
    print(json.dumps(out), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 s a run, each variant once (about a minute a variant)")
    ap.add_argument("--config", default=str(ROOT / "config" / "providers.yaml"))
    ap.add_argument("--variant", action="append", default=[], help="label:path=value;path=value (repeatable)")
    ap.add_argument("--repeat", type=int, default=None, help="runs of every variant, interleaved (default 2; --quick 1)")
    ap.add_argument("--seconds", type=float, default=None, help="measured seconds a run (default 12; --quick 5)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--generator", choices=["auto", "wrk", "asyncio"], default="auto")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    repeat = args.repeat or (1 if args.quick else 2)
    seconds = args.seconds or (5.0 if args.quick else 12.0)
    generator = args.generator if args.generator != "auto" else ("wrk" if shutil.which("wrk") else "asyncio")
    variants = [parse_variant(v) for v in args.variant] or [("default", [])]

    base, config_hash = config_subset(args.config, "embeddings", "minilm")
    doc = base.model_dump(mode="json", by_alias=True)
    doc["registry"]["embedding_cache"] = {"enabled": False}  # one body repeated: the cache would answer it
    body = json.dumps({"model": "minilm", "input": sentences(128)[64]})

    target = Target(mode="own", ptype="embeddings", name="minilm")
    target.connect(None, need_ray=True)
    runs = []
    try:
        for _ in range(repeat):
            for label, overrides in variants:
                runs.append(one_run(target, with_overrides(doc, overrides), label, body, args.clients, seconds,
                                    generator))
    finally:
        target.remove()
        target.close()
    result = {
        "benchmark": "served_embed_cost", "quick": args.quick, "config": args.config, "config_hash": config_hash,
        "clients": args.clients, "seconds_per_run": seconds, "load_generator": generator,
        "variants": {label: dict(overrides) for label, overrides in variants},
        "median_requests_per_s": {label: statistics.median(r["requests_per_s"] for r in runs if r["variant"] == label)
                                  for label, _ in variants},
        "runs": runs,
        "zero_errors": all(r["errors"] == 0 for r in runs),
    }
    write_result(args.out, "served_embed_cost", result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
