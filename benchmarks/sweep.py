"""Capacity planning: sweep a provider's deployment shape, measure each at a set of rates.

The grid is replicas x max_batch_size x batch_wait_timeout_s x num_gpus (flags,
or a small YAML with the same keys as lists). Each point is deployed through
the registry's own hot-swap path (`ProviderRegistry.swap_provider`: the new
version starts beside the old, passes its health check, the table flips, the
old one drains), then loaded open-loop (Poisson) at every ``--rate``. Writes
``<out>/sweep.json`` (the table), ``<out>/sweep.png`` (throughput vs p99, the
frontier drawn over every point's curve) and a recommendation: the cheapest
point (fewest GPUs, then CPUs) whose p99 meets ``--slo-p99-ms`` at
``--target-rps`` with no errors. Last line: one JSON object.

    python benchmarks/sweep.py --quick                                   # local Ray, packaged MiniLM
    python benchmarks/sweep.py --address auto --config config/examples/gpu_cluster.yaml \\
        --provider embeddings/e5 --replicas 1,2,4 --max-batch-size 32,128 --num-gpus 0.5,1 \\
        --rate 250,500,1000,2000 --target-rps 2000 --slo-p99-ms 50 --clients 4

Against a running registry (``--registry-url`` with ``--address`` and ``--app-name``)
it swaps that registry's provider, and swaps it back to the deployment it found
at the end: it deploys and deletes no application of its own there.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._load import ClientPool, Payload, add_load_args, parse_list, run_point  # noqa: E402
from benchmarks._target import (  # noqa: E402
    add_target_args,
    config_subset,
    describe_environment,
    open_target,
    write_result,
)

MINILM = "providers.embeddings.sentence_transformers.SentenceTransformerProvider"
GRID_KEYS = {"replicas": int, "max_batch_size": int, "batch_wait_timeout_s": float, "num_gpus": float}


def grid_of(args: argparse.Namespace) -> list[dict[str, Any]]:
    values = {k: parse_list(getattr(args, k), kind) for k, kind in GRID_KEYS.items()}
    if args.grid:
        import yaml

        doc = yaml.safe_load(Path(args.grid).read_text()) or {}
        unknown = set(doc) - set(GRID_KEYS)
        if unknown:
            raise SystemExit(f"{args.grid}: unknown key(s) {sorted(unknown)}; known: {', '.join(GRID_KEYS)}")
        values.update({k: [kind(x) for x in (v if isinstance(v, list) else [v])]
                       for k, v in doc.items() for kind in [GRID_KEYS[k]]})
    return [dict(zip(GRID_KEYS, combo)) for combo in itertools.product(*values.values())]


def own_config(port: int) -> Any:
    """The packaged MiniLM on torch (nothing to export), the embedding cache off (the
    load's bodies are unique anyway)."""
    from providers.registry.config import parse_config

    return parse_config({
        "registry": {"http_port": port, "embedding_cache": {"enabled": False}},
        "embeddings": {"providers": {"minilm": {
            "class": MINILM, "config": {"backend": "torch", "num_threads": 2},
            "deployment": {"num_cpus": 1, "max_ongoing_requests": 256}}}},
    })


def deployment_for(base: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    d = {k: v for k, v in base.items() if k != "autoscaling_config"}  # a fixed count is the point
    d.update(num_replicas=point["replicas"], num_gpus=point["num_gpus"])
    d["batching"] = {**(base.get("batching") or {}), "max_batch_size": point["max_batch_size"],
                     "batch_wait_timeout_s": point["batch_wait_timeout_s"]}
    return d


def cost_of(point: dict[str, Any], deployment: dict[str, Any]) -> dict[str, float]:
    return {"gpus": round(point["replicas"] * point["num_gpus"], 3),
            "cpus": round(point["replicas"] * float(deployment.get("num_cpus", 1.0)), 3)}


async def swap_to(registry: Any, ptype: str, name: str, deployment: dict[str, Any], timeout_s: float = 300) -> int:
    """Swap, then wait until the version it replaced is gone, so it takes no CPU from the load."""
    from deployments.deployer import serve_status
    from providers.registry.table import provider_app_name
    from providers.types import ProviderType

    r = await registry.swap_provider(ptype, name, deployment=deployment)
    old = provider_app_name(registry.app_name, ProviderType.parse(ptype), name, r["previous_version"])
    deadline = time.monotonic() + timeout_s
    while old in (await asyncio.to_thread(serve_status)).applications and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return r["version"]


async def current(registry: Any, ptype: str, name: str) -> dict[str, Any]:
    return (await registry.list_providers(ptype))[ptype][name]


def measure_grid(args: argparse.Namespace, target: Any, grid: list[dict], rates: list[float]) -> tuple[list, dict]:
    from serve_app import ProviderRegistry

    registry = ProviderRegistry(app_name=target.app_name)
    found = asyncio.run(current(registry, target.ptype, target.name))
    base = found["deployment"]
    payload = Payload(target.name, tuple(f"a sentence about sweeping number {i}" for i in range(512)))
    url = target.url + "/v1/embeddings"
    cap = (parse_list(args.concurrency, int) or [256])[0]
    duration = args.duration or (3.0 if args.quick else 15.0)
    rows = []
    try:
        with ClientPool(args.clients, args.client_cpus) as pool:
            rows = _points(registry, target, base, grid, rates, url, payload, duration, cap, pool)
    finally:
        if target.mode == "running":  # leave the registry's provider as it was found
            asyncio.run(swap_to(registry, target.ptype, target.name, base))
    return rows, {"deployment_found": base, "version_found": found["version"]}


def _points(registry: Any, target: Any, base: dict[str, Any], grid: list[dict], rates: list[float], url: str,
            payload: Payload, duration: float, cap: int, pool: ClientPool) -> list[dict[str, Any]]:
    """Swap to each point, then load it at every rate."""
    rows = []
    for point in grid:
        deployment = deployment_for(base, point)
        t = time.monotonic()
        version = asyncio.run(swap_to(registry, target.ptype, target.name, deployment))
        swap_s = round(time.monotonic() - t, 1)
        run_point(url, payload, 0.5, None, 4)  # warm the new replicas and connections
        measured = [run_point(url, payload, duration, r, cap, pool, seed=len(rows) * 100 + i)
                    for i, r in enumerate(rates)]
        after = asyncio.run(current(registry, target.ptype, target.name))["version"]
        rows.append({"point": point, "cost": cost_of(point, deployment), "version": version, "swap_s": swap_s,
                     "rolled_back": after != version, "measurements": measured})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "measurements"}
                         | {"p99_ms": [m["p99_ms"] for m in measured]}), flush=True)
    return rows


def meets(m: dict[str, Any], slo_ms: float) -> bool:
    # Open loop: a server that cannot keep up shows in p99 (latency counts from the
    # scheduled arrival); achieved vs offered differs by Poisson noise on short runs.
    return (m["errors"] == 0 and m["all_answered"] and m["p99_ms"] is not None and m["p99_ms"] <= slo_ms
            and not m.get("generator_saturated"))


def frontier_of(rows: list[dict]) -> list[dict[str, Any]]:
    """Measurements no other beats on both throughput and p99 (errors excluded)."""
    ms = [{"point": r["point"], "achieved_rps": m["achieved_rps"], "p99_ms": m["p99_ms"]}
          for r in rows for m in r["measurements"] if m["errors"] == 0 and m["p99_ms"] is not None]
    front = [a for a in ms if not any(b["achieved_rps"] >= a["achieved_rps"] and b["p99_ms"] <= a["p99_ms"]
                                      and (b["achieved_rps"], b["p99_ms"]) != (a["achieved_rps"], a["p99_ms"])
                                      for b in ms)]
    return sorted(front, key=lambda f: f["achieved_rps"])


def recommend(rows: list[dict], slo_ms: float, target_rps: float) -> dict[str, Any] | None:
    ok = []
    for r in rows:
        m = next((m for m in r["measurements"] if m["offered_rps"] == target_rps), None)
        if m is not None and meets(m, slo_ms) and not r["rolled_back"]:
            ok.append((r["cost"]["gpus"], r["cost"]["cpus"], m["p99_ms"], r, m))
    if not ok:
        return None
    gpus, cpus, p99, r, m = min(ok, key=lambda x: x[:3])
    return {"point": r["point"], "cost": r["cost"], "p99_ms": p99, "achieved_rps": m["achieved_rps"]}


def plot(rows: list[dict], front: list[dict], slo_ms: float, target_rps: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        ms = [m for m in r["measurements"] if m["p99_ms"] is not None]
        p = r["point"]
        ax.plot([m["achieved_rps"] for m in ms], [m["p99_ms"] for m in ms], "o-", alpha=0.6,
                label=f"{p['replicas']}x, batch {p['max_batch_size']}, wait {p['batch_wait_timeout_s']:g}s, "
                      f"{p['num_gpus']:g} GPU")
    ax.plot([f["achieved_rps"] for f in front], [f["p99_ms"] for f in front], "k--", lw=2, label="frontier")
    ax.axhline(slo_ms, color="red", lw=1, label=f"SLO p99 {slo_ms:g} ms")
    ax.axvline(target_rps, color="grey", lw=1, label=f"target {target_rps:g} req/s")
    ax.set_yscale("log")
    ax.set_xlabel("achieved requests / s")
    ax.set_ylabel("p99 latency (ms, from scheduled arrival)")
    ax.set_title("throughput-latency frontier of the sweep")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s per rate, two rates")
    ap.add_argument("--grid", help="YAML: replicas, max_batch_size, batch_wait_timeout_s, num_gpus (lists)")
    ap.add_argument("--replicas", default="1,2")
    ap.add_argument("--max-batch-size", default="32")
    ap.add_argument("--batch-wait-timeout-s", default="0.005")
    ap.add_argument("--num-gpus", default="0", help="GPU fraction per replica, comma-separated")
    ap.add_argument("--slo-p99-ms", type=float, default=200.0)
    ap.add_argument("--target-rps", type=float, default=None, help="default: the highest --rate")
    add_target_args(ap)
    add_load_args(ap, default_concurrency="256")
    args = ap.parse_args()
    rates = parse_list(args.rate) or ([20.0, 50.0] if args.quick else [25.0, 50.0, 100.0, 150.0])
    target_rps = args.target_rps or max(rates)
    rates = sorted(set(rates) | {target_rps})
    grid = grid_of(args)
    target = open_target(args)  # swaps go through the Python API: Ray is needed in every mode
    if target.address is None:
        raise SystemExit("a sweep swaps through the registry's Python API: give --address with --registry-url")
    left: list[str] = []
    try:
        if target.mode != "running":
            from providers.net import free_port

            config = own_config(free_port()) if target.mode == "own" else None
            if config is None:
                config, target.config_hash = config_subset(args.config, target.ptype, target.name, free_port())
            # The sweep's own load can fail calls (overload 503s): no automatic rollback
            # may move the point under measurement.
            config.registry.rollout.auto_rollback = False
            target.deploy(config, label="sweep")
        environment = describe_environment(target)
        rows, found = measure_grid(args, target, grid, rates)
    finally:
        if target.deployed:
            left = target.remove()
        target.close()
    front = frontier_of(rows)
    png = Path(args.out) / "sweep.png"
    plot(rows, front, args.slo_p99_ms, target_rps, png)
    result = {"benchmark": "sweep", "quick": args.quick, "mode": target.mode,
              "provider": f"{target.ptype}/{target.name}", "rates": rates, "grid": grid,
              "slo_p99_ms": args.slo_p99_ms, "target_rps": target_rps, "points": rows, "frontier": front,
              "recommendation": recommend(rows, args.slo_p99_ms, target_rps), **found,
              "left_deployed": left, "plot": str(png), "environment": environment}
    result["json"] = str(write_result(args.out, "sweep", result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
