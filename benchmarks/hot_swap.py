"""Hot swap under steady load: latency and errors before, during and after.

Serves a provider, loads it over HTTP at fixed concurrency, swaps it to a new
version (new config, same name) mid-run, and keeps loading. Last line: one
JSON object with ``requests``, ``failed_requests``, ``p99_ms_steady``,
``p99_ms_during_event``, ``time_to_recover_s`` (from the swap call to the
first answer from the new version), plus a PNG timeline.

    python benchmarks/hot_swap.py [--quick] [--provider minilm|hash]

On a cluster: ``--address A`` deploys the built-in provider there under an app
name of its own; ``--config providers.yaml --provider embeddings/NAME`` deploys
that file's provider (and what it depends on) instead and swaps it to the same
config plus a new ``batch_size``; both remove exactly what they deployed.
``--registry-url`` is refused: a swap replaces a provider the run did not start.
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


async def run(http: str, seconds: float, concurrency: int, provider: str, app_name: str = "bench",
              name: str = "target", new_config: dict | None = None, plot_path=None) -> dict:
    from serve_app import ProviderRegistry, ProviderType

    registry = ProviderRegistry(app_name=app_name)
    tl = Timeline()
    stop_event = asyncio.Event()
    load = asyncio.create_task(steady_load(http + "/v1/embeddings", name, concurrency, stop_event, tl))
    await asyncio.sleep(seconds / 3)
    event_start = time.monotonic() - tl.t0
    if new_config is None:
        new_config = ({"batch_size": 16, "num_threads": 2} if provider == "minilm"
                      else {"label": "v2", "dimension": 384})
    await registry.swap_provider(ProviderType.EMBEDDING, name, config=new_config)
    event_end = time.monotonic() - tl.t0
    await asyncio.sleep(seconds / 3)
    stop_event.set()
    await load
    stats = (await registry.get_stats())["usage_stats"][f"embeddings/{name}"]
    result = summarize(tl, event_start, event_end, recovered_at=event_end)
    result["version_after"] = stats["version"]
    plot(tl, event_start, event_end, f"hot swap of '{provider}' under load ({concurrency} clients)",
         plot_path or ROOT / "benchmarks" / "results" / "hot_swap.png")
    return result


def on_target(args: argparse.Namespace, seconds: float) -> dict:
    """--address and/or --config: deploy there, swap under load, remove exactly what was deployed."""
    from providers.registry.config import parse_config

    refuse_running(args, "hot_swap", "swaps the provider it measures (the old version is stopped)")
    target = open_target(args)
    if target.ptype != "embeddings":
        raise SystemExit("hot_swap loads /v1/embeddings: --provider must be embeddings/<name>")
    own = {"class": MINILM, "config": {"num_threads": 2}, "deployment": {"num_cpus": 0.5}}
    left: list[str] = []
    try:
        deploy_chosen(target, args, lambda port: parse_config({"registry": {"http_port": port},
                                                               "embeddings": {"providers": {target.name: own}}}))
        current = dict(target.config_doc["embeddings"]["providers"][target.name].get("config") or {})
        new_config = {**current, "batch_size": 16 if current.get("batch_size") != 16 else 32}
        environment = describe_environment(target)
        result = asyncio.run(run(target.url, seconds, args.concurrency, target.name, app_name=target.app_name,
                                 name=target.name, new_config=new_config,
                                 plot_path=Path(args.out) / "hot_swap.png"))
    finally:
        left = finish(target)
    return {**result, **target_fields(target, left), "swapped_to": new_config, "environment": environment}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--concurrency", type=int, default=8)
    add_target_args(ap, default_provider="minilm")
    args = ap.parse_args()
    seconds = 24.0 if args.quick else 60.0
    if mode_of(args) != "own" or args.address:
        if args.provider == "hash":
            ap.error("--provider hash is a test provider (tests/ on every node): on a target use minilm "
                     "or --config's embeddings/<name>")
        if args.provider == "minilm":  # the built-in MiniLM, named as locally
            args.provider = "embeddings/target"
        out = {"benchmark": "hot_swap", "quick": args.quick, "concurrency": args.concurrency,
               "load_generator": "asyncio (httpx)", "plot": str(Path(args.out) / "hot_swap.png"),
               **on_target(args, seconds)}
        write_result(args.out, "hot_swap", out)
        print(json.dumps(out))
        return
    if args.provider not in ("minilm", "hash"):
        ap.error("--provider: minilm or hash here; type/name with --config or --address")
    spec = ({"class": MINILM, "config": {"num_threads": 2}, "deployment": {"num_cpus": 0.5}}
            if args.provider == "minilm" else
            {"class": f"{SAMPLE}.HashEmbedder", "config": {"label": "v1"}, "deployment": {"num_cpus": 0.1}})
    info = start({"target": spec})
    try:
        result = asyncio.run(run(info["http"], seconds, args.concurrency, args.provider))
    finally:
        stop()
    print(json.dumps({"benchmark": "hot_swap", "quick": args.quick, "provider": args.provider,
                      "concurrency": args.concurrency, "load_generator": "asyncio (httpx)",
                      "plot": "benchmarks/results/hot_swap.png", **result}))


if __name__ == "__main__":
    main()
