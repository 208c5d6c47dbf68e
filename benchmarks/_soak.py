"""The reliability report's long run (issue 16, part 3): ``--soak MINUTES``.

The report's registry (``registry_config``: embedders with a fallback, the
pgvector store ``docs``, the Ladybug graph ``g``, the Valkey embedding cache,
two router replicas, the ``people`` graph manager and ``memory.store``) plus
two cheap providers for the traffic they serve: the ``cosine`` reranker (the
``writer`` embedder's vectors) and ``memory.search`` (``docs``, reranked by
``cosine``). Health monitoring on, as in production.

One client per kind of request keeps a modest steady rate (a pause of
``PAUSE_S`` after each answer): embeddings (``primary``, with its fallback),
document writes, vector search, graph neighbours, graph episodes (writes
through ``people``), rerank, ``memory.store`` and ``memory.search``. After a
warm-up, for MINUTES: every ``interval`` (2 minutes; MINUTES/3 for soaks
under 6 minutes, so any soak has at least one of each) a hot swap of
``primary`` (``POST /v1/admin/providers/embeddings/primary/swap``, a new
config: zero downtime is the promise), and half an interval later the
report's ``provider replica killed`` fault (``Faults.provider_replica_killed``,
a ``ray.kill`` of a ``primary`` replica).

Figures: requests, errors and p99 per minute; at start, every minute and at
the end the RSS and open file descriptors of every process of the local Ray
instance (the descendants of this driver: GCS, raylet, Ray's agents, the
workers and what they started) and of the embedded PostgreSQL (postmaster
and backends), summed and per process name (a replica's name without its
version and replica id, so a swapped or restarted replica keeps its name);
the slope (least squares over those samples, MB/hour) per name; and
PostgreSQL's client connections (``pg_stat_activity``, our own excluded).
``leak_suspects``: names whose RSS still grows once settled: the slope over
the last two thirds of the samples above both 5% of their start RSS and
50 MB per hour. The first third is left out because a process's first
minutes (allocator arenas, caches and buffer pools filling) look like a leak:
in a 10-minute soak on 2026-12-05 nearly every process grew more than 5%/hour
over the whole run, the graph engine 235 -> 563 MB. A run of minutes still
proves little; an hour or more says something.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

NAME = "soak"
PAUSE_S = 0.1  # each client waits this long after each answer: steady, not a flood (2 cores run it all)
WARMUP_S = 20.0
LEAK_PCT_PER_HOUR = 5.0
LEAK_MB_PER_HOUR = 50.0
KINDS = ("embed", "write", "search", "graph", "episode", "rerank", "memory_store", "memory_search")


def soak_config(report: ModuleType, tmp: Path, fault_file: Path) -> dict[str, Any]:
    cfg = report.registry_config(tmp, fault_file)
    small = {"num_cpus": 0.1}
    cfg["rerankers"] = {"providers": {"cosine": {
        "class": "providers.rerankers.embedding_similarity.EmbeddingSimilarityReranker",
        "config": {"embedder": "writer"}, "depends_on": ["embeddings/writer"], "deployment": small}}}
    cfg["tools"]["providers"]["memory.search"] = {
        "class": "providers.tools.memory.MemorySearchTool",
        "config": {"vector_store": "docs", "embedder": "writer", "reranker": "cosine"},
        "depends_on": ["vector_stores/docs", "embeddings/writer", "rerankers/cosine"], "deployment": small}
    return cfg


def request(kind: str, n: int, tag: str) -> tuple[str, str, dict[str, Any] | None]:
    if kind == "embed":
        return "POST", "/v1/embeddings", {"model": "primary", "input": [f"text {tag}"]}
    if kind == "write":
        return ("POST", "/v1/vector_stores/docs/documents",
                {"documents": [{"id": tag, "content": f"document {tag}", "metadata": {"n": n}}]})
    if kind == "search":
        return "POST", "/v1/vector_stores/docs/search", {"text": f"document {n}", "top_k": 3}
    if kind == "graph":
        return "GET", f"/v1/graph/g/neighbors/e{n % 200}?depth=2", None
    if kind == "episode":
        return ("POST", "/v1/graph/people/episodes",
                {"content": f"soak episode {tag}", "source": "soak",
                 "entities": [{"name": f"thing {n % 50}", "entity_type": "Thing"}]})
    if kind == "rerank":
        return ("POST", "/v1/rerank", {"model": "cosine", "query": f"query {n}",
                                       "documents": [f"document {n}", f"other {tag}", "a third text"]})
    if kind == "memory_store":
        return "POST", "/v1/tools/memory.store", {"memories": [{"id": f"m-{tag}", "content": f"memory {tag}"}]}
    if kind == "memory_search":
        return "POST", "/v1/tools/memory.search", {"query": f"memory {n}", "top_k": 3}
    raise ValueError(kind)


def soak_load(report: ModuleType) -> type:
    class SoakLoad(report.Load):
        """The report's Load with more kinds of request and a modest rate; errors counted by kind."""

        error_kinds: Counter

        async def _loop(self, client: Any, kind: str) -> None:
            n = 0
            while not self.stop.is_set():
                n += 1
                tag = uuid.uuid4().hex[:12]
                method, path, body = request(kind, n, tag)
                start = self.now()
                ok = False
                try:
                    r = await client.request(method, self.http + path, json=body)
                    ok = r.status_code < 300
                    if not ok:
                        self.error_kinds[f"{kind} {r.status_code}"] += 1
                        self.errors.append(f"{kind} {r.status_code} {r.text[:160]}")
                except Exception as exc:
                    self.error_kinds[f"{kind} {type(exc).__name__}"] += 1
                    self.errors.append(f"{kind} {type(exc).__name__}: {str(exc)[:120]}")
                self.samples.append(report.Sample(start, (self.now() - start) * 1000, ok, kind))
                await asyncio.sleep(PAUSE_S)

    return SoakLoad


# -- the processes ----------------------------------------------------------------------------

_VERSION = re.compile(r"--v[0-9]+")


def process_name(p: Any) -> str:
    """A stable name: a Ray worker's title without version and replica id; else the program
    (a Python program by its script)."""
    try:
        cmd = p.cmdline()
        name = p.name()
    except Exception:
        return "?"
    first = cmd[0] if cmd else name
    if first.startswith("ray::"):
        title = first.split()[0]
        title = _VERSION.sub("", title)
        return re.sub(r"#[A-Za-z0-9]+$", "", title)  # a replica id at the end
    if name.startswith("python") or Path(first).name.startswith("python"):
        script = next((a for a in cmd[1:] if a.endswith(".py")), None)
        if script:
            return f"python {Path(script).parent.name}/{Path(script).name}"
        if "-m" in cmd:
            return f"python -m {cmd[cmd.index('-m') + 1]}"
    return name


def ray_processes(pg_dir: Path) -> list[Any]:
    """This driver's descendants (ray.init started GCS and raylet; the raylet the workers; the
    workers the servers they run) and the embedded PostgreSQL (pg_ctl daemonizes it elsewhere)."""
    import psutil

    me = psutil.Process()
    procs = {p.pid: p for p in me.children(recursive=True)}
    pid_file = pg_dir / "postmaster.pid"
    try:
        post = psutil.Process(int(pid_file.read_text().split()[0]))
        procs[post.pid] = post
        procs.update({c.pid: c for c in post.children(recursive=True)})
    except Exception:
        pass
    return list(procs.values())


def snapshot(pg_dir: Path) -> dict[str, Any]:
    rss: Counter = Counter()
    fds: Counter = Counter()
    count: Counter = Counter()
    for p in ray_processes(pg_dir):
        try:
            name = process_name(p)
            r = p.memory_info().rss / 2**20
            f = p.num_fds()
        except Exception:  # gone meanwhile
            continue
        rss[name] += r
        fds[name] += f
        count[name] += 1
    return {"rss": dict(rss), "fds": dict(fds), "count": dict(count)}


def pg_connections(pg_dir: Path) -> dict[str, int]:
    import psycopg

    from providers.vector_stores import embedded_postgres

    uri = embedded_postgres.ensure_running(pg_dir)
    with psycopg.connect(uri, autocommit=True) as conn:
        rows = conn.execute("SELECT backend_type, count(*) FROM pg_stat_activity "
                            "WHERE pid <> pg_backend_pid() GROUP BY backend_type").fetchall()
    by = {t or "?": int(c) for t, c in rows}
    return {"client": by.get("client backend", 0), "all": sum(by.values())}


def slope_mb_per_hour(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 2 or points[-1][0] - points[0][0] <= 0:
        return None
    t = np.array([p[0] for p in points]) / 3600.0
    y = np.array([p[1] for p in points])
    return round(float(np.polyfit(t, y, 1)[0]), 1)


# -- the run ----------------------------------------------------------------------------------

async def soak(report: ModuleType, info: dict[str, Any], tmp: Path, fault_file: Path, primary_config: dict[str, Any],
               minutes: float) -> dict[str, Any]:
    import httpx

    http = info["http"]
    pg_dir = tmp / "pg"
    await report.seed_graph(http)
    admin = {"Authorization": f"Bearer {os.environ[report.TOKEN_ENV]}"}
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(http + "/v1/admin/monitoring", json={"enabled": True}, headers=admin)
        r.raise_for_status()
    load = soak_load(report)(http)
    load.error_kinds = Counter()
    task = asyncio.create_task(load.run({k: 1 for k in KINDS}))
    await asyncio.sleep(WARMUP_S)

    loop = asyncio.get_running_loop()
    t_start = load.now()
    total_s = minutes * 60
    interval = min(120.0, total_s / 3)
    samples = [(0.0, await loop.run_in_executor(None, snapshot, pg_dir))]
    pg_start = await loop.run_in_executor(None, pg_connections, pg_dir)
    print(f"soak: {minutes} min, an event every {interval:.0f} s; start {summary(samples[0][1])}",
          file=sys.stderr, flush=True)

    faults = report.Faults(http, tmp, fault_file, window_s=10.0)
    events: list[dict[str, Any]] = []
    swaps = kills = 0

    async def swap(k: int) -> None:
        nonlocal swaps
        t = time.monotonic()
        async with httpx.AsyncClient(timeout=120) as client:
            r = await client.post(http + "/v1/admin/providers/embeddings/primary/swap", headers=admin,
                                  json={"config": {**primary_config, "label": f"hash-swap{k}"}})
        swaps += 1
        events.append({"at_s": round(load.now() - t_start, 1), "event": "swap", "status": r.status_code,
                       "took_s": round(time.monotonic() - t, 2),
                       **({} if r.status_code < 300 else {"error": r.text[:200]})})

    async def kill() -> None:
        nonlocal kills
        at = round(load.now() - t_start, 1)
        try:
            recovered = await faults.provider_replica_killed()
            kills += 1
            events.append({"at_s": at, "event": "replica killed", "recovered_after_s": recovered})
        except Exception as exc:
            events.append({"at_s": at, "event": "replica killed", "error": f"{type(exc).__name__}: {exc}"[:200]})

    async def schedule() -> None:
        k = 1
        while k * interval < total_s - 5:
            await asyncio.sleep(max(0.0, t_start + k * interval - load.now()))
            await swap(k)
            await asyncio.sleep(max(0.0, t_start + (k + 0.5) * interval - load.now()))
            if load.now() - t_start < total_s - 5:
                await kill()
            k += 1

    async def sample_every_minute() -> None:
        m = 1
        while m * 60 < total_s:
            await asyncio.sleep(max(0.0, t_start + m * 60 - load.now()))
            samples.append((load.now() - t_start, await loop.run_in_executor(None, snapshot, pg_dir)))
            print(f"soak: minute {m}: {summary(samples[-1][1])}; {minute_line(load, t_start, m - 1)}",
                  file=sys.stderr, flush=True)
            m += 1

    events_task = asyncio.create_task(schedule())
    sampler = asyncio.create_task(sample_every_minute())
    await asyncio.sleep(max(0.0, t_start + total_s - load.now()))
    t_end = load.now()
    samples.append((t_end - t_start, await loop.run_in_executor(None, snapshot, pg_dir)))
    pg_end = await loop.run_in_executor(None, pg_connections, pg_dir)
    sampler.cancel()
    await events_task  # an event still running (a kill's recovery wait) is waited for, not cut
    load.stop.set()
    await task
    await faults.client.aclose()
    return figures(load, t_start, t_end, minutes, samples, pg_start, pg_end, swaps, kills, events)


def summary(s: dict[str, Any]) -> str:
    return f"RSS {sum(s['rss'].values()):.0f} MB in {sum(s['count'].values())} processes, {sum(s['fds'].values())} fds"


def minute_line(load: Any, t_start: float, m: int) -> str:
    xs = [s for s in load.samples if t_start + m * 60 <= s.t < t_start + (m + 1) * 60]
    bad = sum(1 for s in xs if not s.ok)
    p99 = round(float(np.percentile([s.ms for s in xs], 99)), 1) if xs else None
    return f"{len(xs)} requests, {bad} errors, p99 {p99} ms"


def figures(load: Any, t_start: float, t_end: float, minutes: float, samples: list[tuple[float, dict[str, Any]]],
            pg_start: dict[str, int], pg_end: dict[str, int], swaps: int, kills: int,
            events: list[dict[str, Any]]) -> dict[str, Any]:
    window = [s for s in load.samples if t_start <= s.t < t_end]
    n_min = max(1, int(np.ceil((t_end - t_start) / 60 - 0.05)))  # the end sample lands a moment after the last minute
    per_min: list[list[Any]] = [[] for _ in range(n_min)]
    for s in window:
        per_min[min(int((s.t - t_start) // 60), n_min - 1)].append(s)
    first, last = samples[0][1], samples[-1][1]
    names = sorted(set(first["rss"]) | set(last["rss"]))
    slopes = {}
    for name in names:
        pts = [(t, s["rss"][name]) for t, s in samples if name in s["rss"]]
        slopes[name] = slope_mb_per_hour(pts)
    total_slope = slope_mb_per_hour([(t, sum(s["rss"].values())) for t, s in samples])
    growth = {n: round(slopes[n] / first["rss"][n] * 100, 1) for n in names
              if n in first["rss"] and slopes[n] is not None and first["rss"][n] > 0}
    settled = samples[len(samples) // 3:]
    settled_slopes = {n: slope_mb_per_hour([(t, s["rss"][n]) for t, s in settled if n in s["rss"]]) for n in names}
    suspects = sorted(n for n, v in settled_slopes.items()
                      if v is not None and n in first["rss"] and first["rss"][n] > 0
                      and v > max(LEAK_MB_PER_HOUR, first["rss"][n] * LEAK_PCT_PER_HOUR / 100))
    errors = [s for s in window if not s.ok]
    kinds_in_window = Counter(s.kind for s in window)
    return {
        "minutes": minutes, "measured_s": round(t_end - t_start, 1), "warmup_s": WARMUP_S, "pause_s": PAUSE_S,
        "requests": len(window), "errors": len(errors),
        "requests_by_kind": dict(sorted(kinds_in_window.items())),
        "errors_by_kind": dict(sorted(Counter(s.kind for s in errors).items())),
        "error_kinds": dict(load.error_kinds.most_common()),
        "first_errors": list(dict.fromkeys(load.errors))[:5],
        "requests_per_minute": [len(x) for x in per_min],
        "errors_per_minute": [sum(1 for s in x if not s.ok) for x in per_min],
        "p99_ms_per_minute": [round(float(np.percentile([s.ms for s in x], 99)), 1) if x else None for x in per_min],
        "swaps": swaps, "kills": kills, "events": events,
        "rss_mb_start": {"total": round(sum(first["rss"].values()), 1),
                         **{n: round(v, 1) for n, v in sorted(first["rss"].items())}},
        "rss_mb_end": {"total": round(sum(last["rss"].values()), 1),
                       **{n: round(v, 1) for n, v in sorted(last["rss"].items())}},
        "rss_slope_mb_per_hour": {"total": total_slope, **slopes},
        "rss_growth_pct_per_hour": growth,
        "rss_settled_slope_mb_per_hour": settled_slopes,
        "processes_start": dict(sorted(first["count"].items())), "processes_end": dict(sorted(last["count"].items())),
        "fds_start": sum(first["fds"].values()), "fds_end": sum(last["fds"].values()),
        "fds_by_name_start": dict(sorted(first["fds"].items())), "fds_by_name_end": dict(sorted(last["fds"].items())),
        "pg_connections_start": pg_start["client"], "pg_connections_end": pg_end["client"],
        "pg_backends_start": pg_start["all"], "pg_backends_end": pg_end["all"],
        "leak_suspects": suspects,
    }


def run(report: ModuleType, minutes: float) -> dict[str, Any]:
    """The report's kind of registry on a fresh local Ray; the soak against it; everything stopped after."""
    import ray
    from ray import serve

    from providers.registry.config import parse_config
    from providers.vector_stores import embedded_postgres
    from serve_app.main import ensure_ray, start_registry
    from tests.integration.sample_providers import set_faults

    os.environ.setdefault(report.TOKEN_ENV, uuid.uuid4().hex)
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    fault_file = tmp / "fault"
    set_faults(fault_file)
    cfg = soak_config(report, tmp, fault_file)
    ensure_ray(address="local", num_cpus=16, env_vars={"PYTHONPATH": str(report.ROOT)})
    try:
        info = start_registry(parse_config(cfg))
        return asyncio.run(soak(report, info, tmp, fault_file,
                                cfg["embeddings"]["providers"]["primary"]["config"], minutes))
    finally:
        serve.shutdown()
        ray.shutdown()
        embedded_postgres.stop(str(tmp / "pg"))
        from providers.caches import embedded_valkey

        embedded_valkey.release(tmp / "valkey", set())
