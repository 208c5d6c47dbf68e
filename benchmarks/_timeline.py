"""Shared parts of the event benchmarks (hot_swap, failover): a registry to
run against, steady load with a per-request timeline, and the summary/plot.

The load is an asyncio client over HTTP at fixed concurrency: each request
is recorded as (start time, latency, ok), so the event's effect shows in
the timeline and in the numbers around it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from providers.net import free_port  # noqa: E402  (re-exported to the other benchmarks)

SAMPLE = "tests.integration.sample_providers"


def start(providers: dict) -> dict:
    """Ray plus a registry named 'bench' serving ``providers`` (embeddings section)."""
    from providers.registry.config import parse_config
    from serve_app.main import ensure_ray, start_registry

    config = parse_config({
        "registry": {"app_name": "bench", "http_port": free_port(), "allowed_module_prefixes": [SAMPLE]},
        "embeddings": {"providers": providers},
    })
    ensure_ray(address="local", env_vars={"PYTHONPATH": str(ROOT)})
    return start_registry(config)


def stop() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@dataclass
class Timeline:
    t0: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, float, bool]] = field(default_factory=list)  # (start s, latency ms, ok)
    errors: list[str] = field(default_factory=list)


async def steady_load(url: str, model: str, concurrency: int, stop_event: asyncio.Event, tl: Timeline) -> None:
    import httpx

    async def worker(client: httpx.AsyncClient, i: int) -> None:
        n = 0
        while not stop_event.is_set():
            n += 1
            t = time.monotonic()
            ok = False
            try:
                r = await client.post(url, json={"model": model, "input": [f"req {i} {n}"]})
                ok = r.status_code == 200
                if not ok:
                    tl.errors.append(f"{r.status_code} {r.text[:200]}")
            except httpx.HTTPError as exc:
                tl.errors.append(repr(exc)[:200])
            tl.samples.append((t - tl.t0, (time.monotonic() - t) * 1000, ok))

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client, i) for i in range(concurrency)))


def summarize(tl: Timeline, event_start: float, event_end: float, recovered_at: float | None) -> dict:
    """Steady = before the event; during = from its start to 2 s after it ended."""
    lat = lambda rows: [ms for _, ms, ok in rows if ok]  # noqa: E731
    steady = [s for s in tl.samples if s[0] < event_start]
    during = [s for s in tl.samples if event_start <= s[0] <= event_end + 2]
    p99 = lambda rows: round(float(np.percentile(lat(rows), 99)), 2) if lat(rows) else None  # noqa: E731
    return {
        "requests": len(tl.samples),
        "failed_requests": sum(1 for s in tl.samples if not s[2]),
        "p99_ms_steady": p99(steady),
        "p99_ms_during_event": p99(during),
        "event_start_s": round(event_start, 3),
        "event_end_s": round(event_end, 3),
        "time_to_recover_s": round(recovered_at - event_start, 3) if recovered_at is not None else None,
        "first_errors": tl.errors[:3],
    }


def plot(tl: Timeline, event_start: float, event_end: float, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s[0] for s in tl.samples])
    ms = np.array([s[1] for s in tl.samples])
    ok = np.array([s[2] for s in tl.samples])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter(t[ok], ms[ok], s=3, alpha=0.5, label="ok")
    if (~ok).any():
        ax.scatter(t[~ok], ms[~ok], s=12, color="red", label="failed")
    ax.axvspan(event_start, event_end, color="orange", alpha=0.2, label="event")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
