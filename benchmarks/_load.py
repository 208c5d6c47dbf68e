"""Open-loop load on ``/v1/embeddings`` (Poisson arrivals at a set rate), and closed loop.

Open loop, as vLLM's benchmark_serving: arrivals follow the clock, not the
answers, so a slow server meets the same offered rate and its queue shows in
the latency. Latency counts from each request's *scheduled* arrival, so time a
request waited in the generator (for a free connection, or because the
generator fell behind) is not hidden (coordinated omission).

Two flags say whose limit a point hit:

- ``concurrency_limited``: arrivals that found every one of ``--concurrency``
  connections busy and waited for one (the server's limit, under that cap);
- ``generator_saturated``: the generator itself sent late (its event loop was
  busy: more than 1% of sends over 10 ms behind schedule). Such a point
  measures the laptop, not the cluster: use ``--clients N``.

``clients > 1`` runs the generator as N Ray actors spread over the cluster,
each at rate/N (a sum of Poisson streams is Poisson), starting together, and
merges their raw latency samples. Each client posts to the URL as given: on a
cluster ``127.0.0.1:8000`` is the proxy on the client's own node (Serve runs
one per node), which is how load should enter a Serve cluster.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

LATE_S = 0.010  # a send this far behind its schedule is the generator's fault
LATE_SHARE = 0.01
REQUEST_TIMEOUT_S = 30.0
PERCENTILES = {"p50_ms": 50, "p90_ms": 90, "p99_ms": 99, "p99_9_ms": 99.9}


@dataclass(frozen=True)
class Payload:
    """What each request carries: ``texts_per_request`` texts for ``model``; with
    ``unique``, a counter suffix makes every body new, so no embedding cache
    answers the load (the figures are the model path's)."""

    model: str
    texts: tuple[str, ...]
    texts_per_request: int = 1
    unique: bool = True

    def body(self, i: int) -> bytes:
        k, n = self.texts_per_request, len(self.texts)
        texts = [self.texts[(i * k + j) % n] + (f" #{i}" if self.unique else "") for j in range(k)]
        return json.dumps({"model": self.model, "input": texts}).encode()


# -- one HTTP client ---------------------------------------------------------------------
class _Poster:
    """aiohttp where installed (the dev extra: less CPU per request), else httpx (a core
    dependency, so the Ray-task clients run on any node of a `ray up` cluster)."""

    def __init__(self, url: str, connections: int) -> None:
        self.url, self.connections = url, connections

    async def __aenter__(self) -> _Poster:
        try:
            import aiohttp

            self._aio = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.connections),
                                              timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
            self._httpx = None
        except ImportError:
            import httpx

            self._aio = None
            self._httpx = httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=httpx.Limits(
                max_connections=self.connections, max_keepalive_connections=self.connections))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await (self._aio.close() if self._aio is not None else self._httpx.aclose())

    async def post(self, body: bytes) -> str | None:
        """None on a 200, else the error's kind: ``http_503``, ``timeout``, ``connect``, a class name."""
        headers = {"Content-Type": "application/json"}
        try:
            if self._aio is not None:
                async with self._aio.post(self.url, data=body, headers=headers) as r:
                    await r.read()
                    status = r.status
            else:
                status = (await self._httpx.post(self.url, content=body, headers=headers)).status_code
        except (asyncio.TimeoutError, TimeoutError):
            return "timeout"
        except Exception as exc:
            name = type(exc).__name__
            return "connect" if "Connect" in name else ("timeout" if "Timeout" in name else name)
        return None if status == 200 else f"http_{status}"


# -- the generators ---------------------------------------------------------------------
async def _open_loop(url: str, payload: Payload, rate: float, duration: float, concurrency: int, seed: int,
                     start_at: float | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    arrivals, t = [], rng.expovariate(rate)
    while t < duration:
        arrivals.append(t)
        t += rng.expovariate(rate)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lags: list[float] = []
    waited = 0
    slots = asyncio.Semaphore(concurrency)
    async with _Poster(url, concurrency) as poster:
        # start_at is wall-clock (shared by clients on several nodes); schedules run on monotonic time.
        t0 = time.monotonic() + (max(0.0, start_at - time.time()) if start_at else 0.0)

        async def one(i: int, due: float) -> None:
            # The slot is awaited here, not in the schedule loop: a full set of
            # connections delays this request, never the next arrivals' sends.
            async with slots:
                kind = await poster.post(payload.body(i + seed * 10_000_000))
            if kind is None:
                latencies.append((time.monotonic() - due) * 1000)
            else:
                errors[kind] += 1

        tasks = []
        for i, at in enumerate(arrivals):
            due = t0 + at
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(max(0.0, time.monotonic() - due))
            if slots.locked():
                waited += 1
            tasks.append(asyncio.create_task(one(i, due)))
        sent_end = time.monotonic()
        await asyncio.gather(*tasks)
    return {"latencies_ms": latencies, "errors": dict(errors), "sent": len(arrivals), "lags_s": lags,
            "waited_for_slot": waited, "seconds": max(duration, sent_end - t0), "offered_rps": rate}


async def _closed_loop(url: str, payload: Payload, concurrency: int, duration: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sent = 0
    async with _Poster(url, concurrency) as poster:
        start = time.monotonic()
        end = start + duration

        async def worker(w: int) -> None:
            nonlocal sent
            i = w
            while time.monotonic() < end:
                t = time.monotonic()
                sent += 1
                kind = await poster.post(payload.body(i))
                i += concurrency
                if kind is None:
                    latencies.append((time.monotonic() - t) * 1000)
                else:
                    errors[kind] += 1

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        seconds = time.monotonic() - start
    return {"latencies_ms": latencies, "errors": dict(errors), "sent": sent, "lags_s": [], "waited_for_slot": 0,
            "seconds": seconds, "offered_rps": None}


def summarize(raw: dict[str, Any], concurrency: int, clients: int) -> dict[str, Any]:
    lat = np.asarray(raw["latencies_ms"]) if raw["latencies_ms"] else None
    ok = len(raw["latencies_ms"])
    lags = np.asarray(raw["lags_s"]) if raw["lags_s"] else np.zeros(1)
    out: dict[str, Any] = {
        "mode": "open" if raw["offered_rps"] else "closed",
        "offered_rps": raw["offered_rps"], "concurrency": concurrency, "clients": clients,
        "achieved_rps": round(ok / raw["seconds"], 2), "requests": raw["sent"], "ok": ok,
        "errors": sum(raw["errors"].values()), "errors_by_kind": raw["errors"],
        # every request sent was answered (open loop: the server kept up, at whatever latency)
        "all_answered": ok == raw["sent"],
        **{k: (round(float(np.percentile(lat, q)), 2) if lat is not None else None) for k, q in PERCENTILES.items()},
    }
    if raw["offered_rps"]:
        late = float((lags > LATE_S).mean())
        out.update({"late_send_share": round(late, 4), "send_lag_p99_ms": round(float(np.percentile(lags, 99)) * 1000, 2),
                    "generator_saturated": late > LATE_SHARE,
                    "concurrency_limited": raw["waited_for_slot"] > 0.01 * max(1, raw["sent"])})
    return out


def _merge(raws: list[dict[str, Any]]) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    for r in raws:
        errors.update(r["errors"])
    return {"latencies_ms": [x for r in raws for x in r["latencies_ms"]], "errors": dict(errors),
            "sent": sum(r["sent"] for r in raws), "lags_s": [x for r in raws for x in r["lags_s"]],
            "waited_for_slot": sum(r["waited_for_slot"] for r in raws),
            "seconds": max(r["seconds"] for r in raws),
            "offered_rps": sum(r["offered_rps"] for r in raws) if raws[0]["offered_rps"] else None}


class _Client:
    """One load generator on a cluster node (a Ray actor; its methods are Ray tasks)."""

    def ready(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def open_loop(self, *args: Any) -> dict[str, Any]:
        return asyncio.run(_open_loop(*args))

    def closed_loop(self, *args: Any) -> dict[str, Any]:
        return asyncio.run(_closed_loop(*args))


class ClientPool:
    """``n`` client actors spread over the cluster, started once and reused by every
    point (a fresh worker process costs seconds); killed on exit, as this run made them."""

    def __init__(self, n: int, cpus: float = 1.0) -> None:
        self.n, self.cpus, self.actors, self.nodes = n, cpus, [], 0

    def __enter__(self) -> ClientPool:
        if self.n > 1:
            import ray

            # The workers need not have benchmarks/ on their path: this module travels by value.
            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
            actor = ray.remote(num_cpus=self.cpus, scheduling_strategy="SPREAD")(_Client)
            self.actors = [actor.remote() for _ in range(self.n)]
            self.nodes = len(set(ray.get([a.ready.remote() for a in self.actors], timeout=300)))
        return self

    def __exit__(self, *exc: Any) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []


def run_point(url: str, payload: Payload, duration: float, rate: float | None = None, concurrency: int = 64,
              pool: ClientPool | None = None, seed: int = 0) -> dict[str, Any]:
    """One measurement: open loop at ``rate`` (None: closed loop at ``concurrency``),
    here or on the pool's Ray actors; the summary (percentiles, errors by kind, flags)."""
    if pool is None or not pool.actors:
        raw = asyncio.run(_open_loop(url, payload, rate, duration, concurrency, seed) if rate
                          else _closed_loop(url, payload, concurrency, duration))
        return summarize(raw, concurrency, 1)
    import ray

    n = len(pool.actors)
    per = max(1, concurrency // n)
    if rate:
        start_at = time.time() + 0.5  # every client's clock starts together
        refs = [a.open_loop.remote(url, payload, rate / n, duration, per, seed * 100 + i, start_at)
                for i, a in enumerate(pool.actors)]
    else:
        refs = [a.closed_loop.remote(url, payload, per, duration) for a in pool.actors]
    out = summarize(_merge(ray.get(refs, timeout=duration + REQUEST_TIMEOUT_S + 120)), per * n, n)
    out["client_nodes"] = pool.nodes
    return out


def parse_list(text: str | None, kind: type = float) -> list:
    return [kind(x) for x in (text or "").split(",") if x.strip()]


# -- flags, and a whole measurement of a target ------------------------------------------
def add_load_args(ap: Any, default_concurrency: str | None = None) -> None:
    g = ap.add_argument_group("load")
    g.add_argument("--rate", help="open loop: offered requests/s, comma-separated (Poisson arrivals)")
    g.add_argument("--duration", type=float, help="seconds per point (default 4 with --quick, else 15)")
    g.add_argument("--concurrency", default=default_concurrency,
                   help="comma-separated connection counts; closed loop: the clients, open loop: the cap "
                        "(default 1,16,64 closed, 256 open)")
    g.add_argument("--clients", type=int, default=1, help="run the generator as N Ray actors on the cluster")
    g.add_argument("--client-cpus", type=float, default=1.0, help="logical CPUs each Ray client asks")
    g.add_argument("--texts-per-request", type=int, default=1)


def load_points(args: Any, url: str, payload: Payload) -> list[dict[str, Any]]:
    """Every (concurrency, rate) point the flags name, each printed as it ends."""
    rates = parse_list(args.rate)
    concurrencies = parse_list(args.concurrency, int) or ([256] if rates else [1, 16, 64])
    duration = args.duration or (4.0 if args.quick else 15.0)
    run_point(url, payload, 1.0, None, 4)  # warm connections and the batcher
    points = []
    with ClientPool(args.clients, args.client_cpus) as pool:
        for i, c in enumerate(concurrencies):
            for j, rate in enumerate(rates or [None]):
                p = run_point(url, payload, duration, rate, c, pool, seed=i * 100 + j)
                points.append({"texts_per_request": payload.texts_per_request, **p})
                print(json.dumps(points[-1]), flush=True)
    return points


def measure(args: Any, benchmark: str, own_config: Any, texts: list[str]) -> dict[str, Any]:
    """Deploy (own config or --config) or attach (--registry-url), load it, remove what was deployed."""
    from benchmarks._target import config_subset, describe_environment, open_target
    from providers.net import free_port

    needs_ray = args.clients > 1 or not args.registry_url
    target = open_target(args, need_ray=needs_ray)
    if args.clients > 1 and target.address is None:
        raise SystemExit("--clients N runs the generator on a Ray cluster: give --address")
    if target.ptype != "embeddings":
        raise SystemExit(f"{benchmark} loads /v1/embeddings: --provider must be embeddings/<name>")
    left: list[str] = []
    try:
        if target.mode == "config":
            config, target.config_hash = config_subset(args.config, target.ptype, target.name, free_port())
            target.deploy(config)
        elif target.mode == "own":
            target.deploy(own_config(free_port()))
        environment = describe_environment(target)
        payload = Payload(target.name, tuple(texts), args.texts_per_request)
        points = load_points(args, target.url + "/v1/embeddings", payload)
    finally:
        if target.deployed:
            left = target.remove()
        target.close()
    return {"benchmark": benchmark, "quick": args.quick, "mode": target.mode,
            "provider": f"{target.ptype}/{target.name}", "registry_url": target.url, "points": points,
            "zero_errors": all(p["errors"] == 0 for p in points),
            "generator_saturated": any(p.get("generator_saturated") for p in points),
            # --registry-url: nothing was deployed; else: what was deployed is gone
            "left_deployed": left, "environment": environment}
