"""Hot swap under steady load: latency and errors before, during and after.

Serves a provider, loads it over HTTP at fixed concurrency, swaps it to a new
version (new config, same name) mid-run, and keeps loading. Last line: one
JSON object with ``requests``, ``failed_requests``, ``p99_ms_steady``,
``p99_ms_during_event``, ``time_to_recover_s`` (from the swap call to the
first answer from the new version), plus a PNG timeline.

    python benchmarks/hot_swap.py [--quick] [--provider minilm|hash]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from _timeline import ROOT, SAMPLE, Timeline, plot, start, steady_load, stop, summarize

MINILM = "providers.embeddings.sentence_transformers.SentenceTransformerProvider"


async def run(http: str, seconds: float, concurrency: int, provider: str) -> dict:
    from serve_app import ProviderRegistry, ProviderType

    registry = ProviderRegistry(app_name="bench")
    tl = Timeline()
    stop_event = asyncio.Event()
    load = asyncio.create_task(steady_load(http + "/v1/embeddings", "target", concurrency, stop_event, tl))
    await asyncio.sleep(seconds / 3)
    event_start = time.monotonic() - tl.t0
    new_config = {"batch_size": 16, "num_threads": 2} if provider == "minilm" else {"label": "v2", "dimension": 384}
    await registry.swap_provider(ProviderType.EMBEDDING, "target", config=new_config)
    event_end = time.monotonic() - tl.t0
    await asyncio.sleep(seconds / 3)
    stop_event.set()
    await load
    stats = (await registry.get_stats())["usage_stats"]["embeddings/target"]
    result = summarize(tl, event_start, event_end, recovered_at=event_end)
    result["version_after"] = stats["version"]
    plot(tl, event_start, event_end, f"hot swap of '{provider}' under load ({concurrency} clients)",
         ROOT / "benchmarks" / "results" / "hot_swap.png")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--provider", choices=["minilm", "hash"], default="minilm")
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    seconds = 24.0 if args.quick else 60.0
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
