"""Failover under steady load: kill the primary provider's replica mid-run.

The primary (MiniLM) has a per-call deadline and a fallback; its replica is
killed with ``ray.kill`` while clients load it over HTTP. Ray Serve holds
requests for a dead replica until a new one is up (seconds, the model's load
time); the router's deadline and circuit breaker send them to the fallback
instead. Last line: one JSON object with ``requests``, ``failed_requests``,
``p99_ms_steady``, ``p99_ms_during_event``, ``time_to_recover_s`` (kill to
the primary serving again with its breaker closed), ``max_latency_ms_during_event``
(bounded by the deadline plus the fallback), and a PNG timeline.

    python benchmarks/failover.py [--quick]

On a cluster: ``--address A`` deploys the built-in primary and a MiniLM backup
there under an app name of its own; ``--config providers.yaml --provider
embeddings/NAME`` deploys that file's provider with its fallback chain (a
provider without one is measured too: the kill, the errors, the recovery).
Both remove exactly what they deployed. ``--registry-url`` is refused: the run
kills a replica of the provider it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from _timeline import ROOT, SAMPLE, Timeline, plot, start, steady_load, stop, summarize

sys.path.insert(0, str(ROOT))
from benchmarks._target import (  # noqa: E402
    add_target_args,
    deploy_chosen,
    describe_environment,
    finish,
    mode_of,
    open_target,
    refuse_running,
    target_fields,
    write_result,
)

MINILM = "providers.embeddings.sentence_transformers.SentenceTransformerProvider"
DEADLINE_S = 1.0


async def run(http: str, seconds: float, concurrency: int, app_name: str = "bench", name: str = "primary",
              plot_path=None) -> dict:
    import ray

    from serve_app import ProviderRegistry

    registry = ProviderRegistry(app_name=app_name)
    key = f"embeddings/{name}"
    tl = Timeline()
    stop_event = asyncio.Event()
    load = asyncio.create_task(steady_load(http + "/v1/embeddings", name, concurrency, stop_event, tl))
    await asyncio.sleep(seconds / 4)
    before = (await registry.get_stats())["usage_stats"][key]
    version = before["version"]  # the replica of the version serving now, whatever its number
    replica = next(a for a in ray.util.list_named_actors(all_namespaces=True)
                   if f"{app_name}--embeddings--{name}--v{version}#ProviderDeployment" in a["name"])
    event_start = time.monotonic() - tl.t0
    ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]), no_restart=True)
    event_end, recovered_at, opened = None, None, False
    end = time.monotonic() + seconds * 3 / 4
    while time.monotonic() < end:
        await asyncio.sleep(0.25)
        now = (await registry.get_stats())["usage_stats"][key]
        state = now["circuit_breaker"]["state"]
        if state != "closed":
            opened = True
        if event_end is None and now["fell_back"] > before["fell_back"]:
            event_end = time.monotonic() - tl.t0  # the fallback is serving
        if opened and recovered_at is None and state == "closed" and now["successes"] > before["successes"]:
            recovered_at = time.monotonic() - tl.t0
    stop_event.set()
    await load
    event_end = event_end if event_end is not None else event_start
    result = summarize(tl, event_start, recovered_at or event_end, recovered_at)
    during = [ms for t, ms, ok in tl.samples if event_start <= t <= (recovered_at or event_end)]
    result["max_latency_ms_during_event"] = round(max(during), 1) if during else None
    result["deadline_s"] = DEADLINE_S
    result["breaker_opened"] = opened
    plot(tl, event_start, recovered_at or event_end, f"primary replica killed under load ({concurrency} clients)",
         plot_path or ROOT / "benchmarks" / "results" / "failover.png")
    return result


PRIMARY = {"class": MINILM, "config": {"num_threads": 2}, "deployment": {"num_cpus": 0.5},
           "call_timeout_s": DEADLINE_S, "fallback": ["backup"],
           "circuit_breaker": {"failure_threshold": 3, "open_s": 5}}


def on_target(args: argparse.Namespace, seconds: float) -> dict:
    """--address and/or --config: deploy there, kill a replica under load, remove what was deployed."""
    from providers.registry.config import parse_config

    refuse_running(args, "failover", "kills a replica of the provider it measures")
    target = open_target(args)
    if target.ptype != "embeddings":
        raise SystemExit("failover loads /v1/embeddings: --provider must be embeddings/<name>")
    # On a cluster the backup is a second MiniLM: the test module's hash embedder is not on every node.
    own = {target.name: PRIMARY, "backup": {"class": MINILM, "config": {"num_threads": 1},
                                            "deployment": {"num_cpus": 0.5}}}
    left: list[str] = []
    try:
        deploy_chosen(target, args, lambda port: parse_config({"registry": {"http_port": port},
                                                               "embeddings": {"providers": own}}),
                      keep_fallbacks=True)
        spec = target.config_doc["embeddings"]["providers"][target.name]
        environment = describe_environment(target)
        result = asyncio.run(run(target.url, seconds, args.concurrency, app_name=target.app_name, name=target.name,
                                 plot_path=Path(args.out) / "failover.png"))
    finally:
        left = finish(target)
    return {**result, **target_fields(target, left), "fallback": spec.get("fallback") or [],
            "deadline_s": spec.get("call_timeout_s"), "environment": environment}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--concurrency", type=int, default=8)
    add_target_args(ap, default_provider="embeddings/primary")
    args = ap.parse_args()
    seconds = 40.0 if args.quick else 90.0
    if mode_of(args) != "own" or args.address:
        out = {"benchmark": "failover", "quick": args.quick, "concurrency": args.concurrency,
               "load_generator": "asyncio (httpx)", "plot": str(Path(args.out) / "failover.png"),
               **on_target(args, seconds)}
        write_result(args.out, "failover", out)
        print(json.dumps(out))
        return
    info = start({
        "primary": PRIMARY,
        "backup": {"class": f"{SAMPLE}.HashEmbedder", "config": {"label": "backup"}, "deployment": {"num_cpus": 0.1}},
    })
    try:
        result = asyncio.run(run(info["http"], seconds, args.concurrency))
    finally:
        stop()
    print(json.dumps({"benchmark": "failover", "quick": args.quick, "concurrency": args.concurrency,
                      "load_generator": "asyncio (httpx)", "plot": "benchmarks/results/failover.png", **result}))


if __name__ == "__main__":
    main()
