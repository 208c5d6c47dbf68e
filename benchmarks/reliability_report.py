"""Reliability report: break every dependency under continuous load, count what
failed and what was lost; fuzz the HTTP API and the config loader.

One registry (app ``reliability``) runs embedders with a fallback, a pgvector
store filled by its own embedder, a Ladybug graph, and a Valkey cache behind
the router's embedding cache, with two router replicas and health monitoring
on (every 5 s; a healthy probe lets an open breaker try again at once). For each fault, load
runs over HTTP before, during and after it:

    provider replica killed     ray.kill of the primary embedder's replica
    router replica killed       ray.kill of one of the two router replicas
    Serve controller killed     ray.kill (Ray restarts it)
    PostgreSQL restarted        pg_ctl stop under a write load (the store starts it again)
    Valkey stopped              the cache server killed, started again after the window
    graph file locked           the engine's replica killed while another process holds the file
    provider hangs              the primary stops answering (its deadline, then the fallback)
    provider malformed          the primary answers NaN vectors of the wrong length
    provider leaks memory       the primary keeps memory per call until its health check says so

Each row: ``requests`` and ``failed`` in the fault's window (injection to
recovery plus 2 s), ``failed_with_fallback`` (failures of calls whose
provider has a fallback: the target is 0), ``recovered_after_s`` (injection
to the faulty part serving again), ``lost`` (writes acknowledged with 2xx
and missing afterwards), ``error_p99_ms`` (how fast the failures were).

Then crash after acknowledge (issue 16; benchmarks/_durability.py, tests/crash.py):
writers keep writing vector documents, graph episodes and memory.store over
HTTP; a kill -9 of the replicas holding the data, then of the embedded
PostgreSQL; every acknowledged item read back (``lost`` must be 0); and the
Valkey embedding cache's server killed (a cache: entries dropped, counted in
``durability``, never a failed call). ``--only acknowledge`` runs just these.

Then overload (issue 16), on a registry of its own that runs ``make serve``'s
minilm (config/providers.yaml): a burst of 2,000 connections of one-text
embeddings (wrk) while 40 probe clients time every request, once with the
default queue limits (``registry.router.max_queued_requests`` and minilm's
``deployment.max_queued_requests``) and once with both off (-1). Its rows keep
the keys above (``failed``: answers other than 200 and 503/429, and socket
errors; ``recovered_after_s``: burst end until the probes' closed-loop rate is
back at 80% of its rate before the burst) and add ``overload``: admitted and
refused counts, p50/p99 of the admitted (probes), refusals with Retry-After,
replicas restarted. ``--only overload`` runs just these.

Then node loss (issue 16; benchmarks/_node_loss.py): tests/cluster/test_node_loss.py's
head and two worker raylets, one worker killed under load; its figures become
two rows (with a second replica and a fallback; one replica, no fallback),
with ``node_loss`` counts. ``--only "node lost"`` runs just these.

Then HTTP fuzzing (schemathesis, every endpoint, valid and invalid requests:
a failure is a 5xx or a response outside the spec) and config fuzzing
(hypothesis: random and mutated providers.yaml must end in a config or a
RegistryError).

    python benchmarks/reliability_report.py [--quick] [--no-readme] [--only NAME] [--soak MINUTES]

A long run (issue 16; benchmarks/_soak.py): ``--soak MINUTES`` runs instead
of the faults and the fuzzing (and writes no docs), on the same kind of
registry plus a reranker and ``memory.search``: mixed traffic at a modest
steady rate (embeddings, document writes and search, graph reads and
episodes, rerank, memory.store and memory.search), a hot swap of the primary
embedder and a kill of one of its replicas every 2 minutes (every MINUTES/3
in a shorter soak), requests, errors and p99 per minute, and at start and end
the RSS (with a slope in MB/hour) and open file descriptors of every process
of the local Ray instance, per process name, and PostgreSQL's connections.
Its figures are the last line's ``soak`` key.

Writes the table into docs/reliability.md between the reliability markers
(unless --no-readme). ``--only NAME`` skips the fuzzing. Last line: one JSON object with ``faults``, ``fuzz_cases``,
``fuzz_failures``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _durability  # noqa: E402
import _node_loss  # noqa: E402
import _soak  # noqa: E402
from _timeline import SAMPLE, free_port  # noqa: E402

from tests.integration.sample_providers import set_faults  # noqa: E402  (one-step writes of the fault file)

APP = "reliability"
TOKEN_ENV = "RELIABILITY_ADMIN_TOKEN"
HASH = f"{SAMPLE}.HashEmbedder"
DIM = 64
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"


# -- load -------------------------------------------------------------------------------------

@dataclass
class Sample:
    t: float  # start, seconds since the report's t0
    ms: float
    ok: bool
    kind: str  # "embed" (has a fallback), "write", "search", "graph"


@dataclass
class Load:
    """Continuous HTTP load of a few kinds; every request recorded."""

    http: str
    t0: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)  # document ids written with a 2xx
    written: list[str] = field(default_factory=list)  # the tag of every write sent, answered or not
    resent: int = 0  # requests sent a second time after a connection closed without an answer
    errors: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def _loop(self, client: Any, kind: str) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            tag = uuid.uuid4().hex[:12]
            if kind == "embed":
                req = ("POST", "/v1/embeddings", {"model": "primary", "input": [f"text {tag}"]})
            elif kind == "write":
                # No id: the router gives one (derived from x-request-id, so HAProxy's retry of a
                # write whose router died writes the same id); the tag finds every copy afterwards.
                req = ("POST", "/v1/vector_stores/docs/documents",
                       {"documents": [{"content": f"document {tag}", "metadata": {"n": n, "tag": tag}}]})
                self.written.append(tag)
            elif kind == "search":
                req = ("POST", "/v1/vector_stores/docs/search", {"text": f"document {n}", "top_k": 3})
            else:
                req = ("GET", f"/v1/graph/g/neighbors/e{n % 200}?depth=2", None)
            start = self.now()
            ok = False
            try:
                r = await self._send(client, req)
                ok = r.status_code < 300
                if ok and kind == "write":
                    self.acked.extend(r.json()["ids"])
                elif not ok:
                    self.errors.append(f"{kind} {r.status_code} {r.text[:160]}")
            except Exception as exc:  # connection reset while a router dies: a failed request
                self.errors.append(f"{kind} {type(exc).__name__}: {str(exc)[:120]}")
            self.samples.append(Sample(start, (self.now() - start) * 1000, ok, kind))
            await asyncio.sleep(0.01)  # a steady stream, not a flood: 2 cores run everything

    async def _send(self, client: Any, req: tuple[str, str, Any]) -> Any:
        """As docs/reliability.md asks of a client: every request with an x-request-id of
        its own, sent once more, with the same id, when the connection closed before any
        answer. HAProxy closes idle keep-alive connections when Serve reloads it (a router
        replica came or went), and a request written at that moment meets the close;
        with the same id the second send of a write stores nothing twice."""
        import httpx

        headers = {"x-request-id": uuid.uuid4().hex}
        try:
            return await client.request(req[0], self.http + req[1], json=req[2], headers=headers)
        except (httpx.RemoteProtocolError, httpx.ConnectError):
            self.resent += 1
            return await client.request(req[0], self.http + req[1], json=req[2], headers=headers)

    async def run(self, kinds: dict[str, int]) -> None:
        import httpx

        self.stop = asyncio.Event()
        async with httpx.AsyncClient(timeout=60) as client:
            await asyncio.gather(*(self._loop(client, kind) for kind, n in kinds.items() for _ in range(n)))


# -- the registry -----------------------------------------------------------------------------

def registry_config(tmp: Path, fault_file: Path) -> dict[str, Any]:
    hash_cfg = {"dimension": DIM}
    quick_health = {"num_cpus": 0.1, "health_check_period_s": 1, "health_check_timeout_s": 5,
                    "graceful_shutdown_timeout_s": 1}
    return {
        "registry": {"app_name": APP, "http_port": free_port(), "allowed_module_prefixes": [SAMPLE],
                     "admin_token_env": TOKEN_ENV, "router": {"num_replicas": 2},
                     "embedding_cache": {"enabled": True, "cache": "valkey", "ttl_s": 600}},
        "embeddings": {"providers": {
            "primary": {"class": HASH, "config": {**hash_cfg, "label": "hash", "fault_file": str(fault_file),
                                                  "leak_mb_per_call": 8, "max_rss_growth_mb": 120},
                        "deployment": quick_health, "call_timeout_s": 1.0, "fallback": ["backup"],
                        "circuit_breaker": {"failure_threshold": 3, "open_s": 1.0}},
            "backup": {"class": HASH, "config": {**hash_cfg, "label": "hash"}, "deployment": {"num_cpus": 0.1}},
            "writer": {"class": HASH, "config": {**hash_cfg, "label": "writer"}, "deployment": {"num_cpus": 0.1}},
        }},
        "vector_stores": {"providers": {
            "docs": {"class": "providers.vector_stores.pgvector.PgVectorStore", "embedder": "writer",
                     "config": {"data_dir": str(tmp / "pg"), "table_name": "docs", "dimension": DIM},
                     "deployment": {"num_cpus": 0.1}, "call_timeout_s": 10},
        }},
        "graph_engines": {"providers": {
            "g": {"class": "providers.graph.ladybug.LadybugGraphEngine",
                  "config": {"path": str(tmp / "graph" / "g.db")}, "deployment": quick_health,
                  "call_timeout_s": 2.0},
        }},
        "cache": {"providers": {
            "valkey": {"class": "providers.caches.redis_cache.RedisCache",
                       "config": {"data_dir": str(tmp / "valkey"), "auto_restart": False},
                       "deployment": {"num_cpus": 0.1}, "call_timeout_s": 0.5},
        }},
        **_durability.extra_providers(store="docs", embedder="writer", engine="g"),
    }


def actors(fragment: str) -> list[dict[str, Any]]:
    import ray

    return [a for a in ray.util.list_named_actors(all_namespaces=True) if fragment in a["name"]]


def kill_actor(entry: dict[str, Any], restart: bool = False) -> None:
    import ray

    ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]), no_restart=not restart)


async def wait_for(probe: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            if await probe():
                return True
        except Exception:
            pass
        await asyncio.sleep(0.2)
    return False


# -- the faults -------------------------------------------------------------------------------

class Faults:
    def __init__(self, http: str, tmp: Path, fault_file: Path, window_s: float) -> None:
        import httpx

        self.http, self.tmp, self.fault_file, self.window_s = http, tmp, fault_file, window_s
        self.client = httpx.AsyncClient(timeout=30)
        self.admin = {"Authorization": f"Bearer {os.environ[TOKEN_ENV]}"}

    async def _stats(self, key: str) -> dict[str, Any]:
        r = await self.client.get(self.http + "/v1/stats")
        return r.json()["usage_stats"][key]

    async def _primary_serving(self, since: int) -> bool:
        s = await self._stats("embeddings/primary")
        return s["circuit_breaker"]["state"] == "closed" and s["successes"] > since

    async def provider_replica_killed(self) -> float | None:
        since = (await self._stats("embeddings/primary"))["successes"]
        kill_actor(actors(f"{APP}--embeddings--primary--")[0])
        t = time.monotonic()
        await asyncio.sleep(0.5)
        return await self._recovered(t, lambda: self._primary_serving(since))

    async def router_replica_killed(self) -> float | None:
        routers = [a for a in actors(f"{APP}#") if "Router" in a["name"]] or actors("RegistryRouter")
        kill_actor(routers[0])
        t = time.monotonic()

        async def two_routers() -> bool:
            from ray import serve

            app = serve.status().applications[APP]
            return all(d.replica_states.get("RUNNING", 0) >= 2 for d in app.deployments.values())
        await asyncio.sleep(1.0)
        return await self._recovered(t, two_routers)

    async def serve_controller_killed(self) -> float | None:
        kill_actor(actors("SERVE_CONTROLLER_ACTOR")[0], restart=True)
        t = time.monotonic()

        async def answers() -> bool:
            from ray import serve

            return serve.status().applications[APP].status == "RUNNING"
        return await self._recovered(t, answers)

    async def postgres_restarted(self) -> float | None:
        from providers.vector_stores import embedded_postgres

        t = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, embedded_postgres.stop, str(self.tmp / "pg"))

        async def writes() -> bool:
            r = await self.client.post(self.http + "/v1/vector_stores/docs/documents",
                                       json={"documents": [{"content": "probe"}]})
            return r.status_code < 300
        return await self._recovered(t, writes)

    async def valkey_stopped(self) -> float | None:
        from providers.caches import embedded_valkey

        sock = embedded_valkey.socket_path((self.tmp / "valkey").resolve())
        info = embedded_valkey._command(sock, "INFO", "server").decode()
        pid = int(next(line.split(":")[1] for line in info.splitlines() if line.startswith("process_id:")))
        os.kill(pid, signal.SIGKILL)
        t = time.monotonic()
        await asyncio.sleep(self.window_s)  # cache down: every lookup must be a miss, not a failure
        await asyncio.get_running_loop().run_in_executor(
            None, embedded_valkey.ensure_running, self.tmp / "valkey", "256mb")

        async def cache_healthy() -> bool:
            r = await self.client.get(self.http + "/v1/providers/cache/valkey/health")
            return r.status_code == 200 and r.json().get("status") == "healthy"
        return await self._recovered(t, cache_healthy)

    async def graph_file_locked(self) -> float | None:
        path = str(self.tmp / "graph" / "g.db")
        holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, path, str(self.window_s)],
                                  stdout=subprocess.PIPE, text=True)
        kill_actor(actors(f"{APP}--graph_engines--g--")[0])
        t = time.monotonic()
        # Waited for off the event loop: blocking here would stall the load being measured.
        await asyncio.get_running_loop().run_in_executor(None, lambda: holder.wait(timeout=self.window_s + 60))
        got_lock = (holder.stdout.read() if holder.stdout else "").strip()
        if got_lock != "held":
            print(f"graph_file_locked: the other process did not get the lock ({got_lock!r})", file=sys.stderr)

        async def reads() -> bool:
            r = await self.client.get(self.http + "/v1/graph/g/neighbors/e1?depth=1")
            return r.status_code == 200
        return await self._recovered(t, reads)

    async def _toggle(self, fault: str) -> float | None:
        since = (await self._stats("embeddings/primary"))["successes"]
        set_faults(self.fault_file, fault)
        t = time.monotonic()
        await asyncio.sleep(self.window_s)
        set_faults(self.fault_file)
        return await self._recovered(t, lambda: self._primary_serving(since))

    async def provider_hangs(self) -> float | None:
        return await self._toggle("hang")

    async def provider_malformed(self) -> float | None:
        return await self._toggle("malformed")

    async def provider_leaks_memory(self) -> float | None:
        before = {a["name"] for a in actors(f"{APP}--embeddings--primary--")}
        set_faults(self.fault_file, "leak")
        t = time.monotonic()

        async def replaced() -> bool:
            now = {a["name"] for a in actors(f"{APP}--embeddings--primary--")}
            return bool(now - before)
        took = await self._recovered(t, replaced, timeout_s=self.window_s * 4)
        set_faults(self.fault_file)
        return took

    async def _recovered(self, t: float, probe: Callable[[], Awaitable[bool]],
                         timeout_s: float | None = None) -> float | None:
        ok = await wait_for(probe, timeout_s or max(60.0, self.window_s * 4))
        return round(time.monotonic() - t, 2) if ok else None


LOCK_HOLDER = r"""
import sys, time, ladybug
path, hold = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + 20
while time.monotonic() < end:  # until the killed replica's lock is gone
    try:
        db = ladybug.Database(path)
        break
    except RuntimeError:
        time.sleep(0.02)
else:
    print("never"); sys.exit(0)
time.sleep(hold)
db.close()
print("held")
"""

FAULTS: list[tuple[str, str, dict[str, int]]] = [
    # (fault, method, load: kind -> clients)
    ("provider replica killed", "provider_replica_killed", {"embed": 4, "write": 1}),
    ("router replica killed", "router_replica_killed", {"embed": 3, "write": 2}),
    ("Serve controller killed", "serve_controller_killed", {"embed": 3, "write": 2}),
    ("PostgreSQL stopped and restarted", "postgres_restarted", {"write": 3, "search": 1}),
    ("Valkey stopped, then restarted", "valkey_stopped", {"embed": 4}),
    ("graph file locked by another process", "graph_file_locked", {"graph": 3}),
    ("provider hangs", "provider_hangs", {"embed": 4}),
    ("provider answers malformed results", "provider_malformed", {"embed": 4}),
    ("provider leaks memory", "provider_leaks_memory", {"embed": 4}),
]


async def run_fault(faults: Faults, http: str, name: str, method: str, kinds: dict[str, int],
                    settle_s: float) -> dict[str, Any]:
    load = Load(http)
    task = asyncio.create_task(load.run(kinds))
    await asyncio.sleep(settle_s)
    start = load.now()
    recovered = await getattr(faults, method)()
    end = load.now() + 2.0
    await asyncio.sleep(2.0)
    load.stop.set()
    await task
    # In the window: every request in flight at any moment from the injection on.
    window = [s for s in load.samples if s.t + s.ms / 1000 >= start and s.t <= end]
    failed = [s for s in window if not s.ok]
    lost, unverified = await count_lost(faults, load.acked)
    duplicated = await count_duplicated(faults, load.written)
    return {"fault": name, "requests": len(window), "failed": len(failed),
            "failed_with_fallback": sum(1 for s in failed if s.kind == "embed"),
            "recovered_after_s": recovered, "lost": lost, "duplicated": duplicated, "resent": load.resent,
            "writes_acknowledged": len(load.acked), "writes_unverified": unverified,
            "error_p99_ms": round(float(np.percentile([s.ms for s in failed], 99)), 1) if failed else None,
            "max_latency_ms": round(max(s.ms for s in window), 1) if window else None,
            "first_error": load.errors[0] if load.errors else None}


async def count_duplicated(faults: Faults, tags: list[str]) -> int | None:
    """Copies beyond the first of every write sent (answered or not), found by its tag:
    a write that ran twice (a retry of a call whose router died after forwarding it)
    under two ids. None when a search kept failing (not counted, not zero)."""
    sem = asyncio.Semaphore(8)

    async def copies(tag: str) -> int | None:
        async with sem:
            for _ in range(10):
                try:
                    r = await faults.client.post(f"{faults.http}/v1/vector_stores/docs/search",
                                                 json={"text": f"document {tag}", "top_k": 5, "filters": {"tag": tag}})
                    if r.status_code == 200:
                        hits = r.json()["results"]
                        if len(hits) > 1:
                            print(f"duplicated write {tag}: {[(h['id'], h.get('created_at')) for h in hits]}",
                                  flush=True)
                        return max(0, len(hits) - 1)
                except Exception:
                    pass
                await asyncio.sleep(0.5)
            return None
    found = await asyncio.gather(*(copies(t) for t in tags))
    return None if None in found else sum(found)


async def count_lost(faults: Faults, acked: list[str]) -> tuple[int, int]:
    """Acknowledged writes read back one by one, after the fault: (lost, unverified).
    A read that keeps failing is unverified, not lost: only a 404 proves a loss."""
    sem = asyncio.Semaphore(8)

    async def state(doc_id: str) -> str:
        async with sem:
            for _ in range(10):
                try:
                    r = await faults.client.get(f"{faults.http}/v1/vector_stores/docs/documents/{doc_id}")
                    if r.status_code == 200:
                        return "kept"
                    if r.status_code == 404:
                        return "lost"
                except Exception:
                    pass
                await asyncio.sleep(0.5)
            return "unverified"
    states = await asyncio.gather(*(state(d) for d in acked))
    return states.count("lost"), states.count("unverified")


async def seed_graph(http: str) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        ents = [{"id": f"e{i}", "name": f"entity {i}", "entity_type": "Thing"} for i in range(200)]
        r = await client.post(http + "/v1/graph/g/entities", json={"entities": ents})
        r.raise_for_status()
        rels = [{"id": f"r{i}", "source_id": f"e{i}", "target_id": f"e{(i * 7 + 1) % 200}", "relationship_type": "L"}
                for i in range(200)]
        r = await client.post(http + "/v1/graph/g/relationships", json={"relationships": rels})
        r.raise_for_status()


# -- fuzzing ----------------------------------------------------------------------------------

def fuzz_http(http: str, examples: int) -> tuple[int, int, list[str]]:
    """Every operation of the served spec through tests/http_fuzzing.py (the suite's own fuzzer)."""
    import httpx
    import schemathesis

    from tests.http_fuzzing import fuzz_operation

    spec = httpx.get(http + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(spec)
    admin = {"Authorization": f"Bearer {os.environ[TOKEN_ENV]}"}
    real = {"primary", "backup", "writer", "docs", "g", "valkey", "people", "memory.store"}
    cases, failures = 0, []
    for path, ops in spec["paths"].items():
        is_admin = path.startswith("/v1/admin/")
        for method in ops:
            sent, failed = fuzz_operation(
                schema[path][method.upper()], path, http, examples, headers=admin if is_admin else None,
                # never delete or swap what the faults above ran on
                skip=lambda case, is_admin=is_admin: is_admin and (case.path_parameters or {}).get("name") in real,
                timeout=60)
            cases += sent
            failures += [f"{method.upper()} {path}: {f[:200]}" for f in failed]
    return cases, len(failures), failures[:5]


def fuzz_config(examples: int) -> tuple[int, int, list[str]]:
    import yaml
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from providers.errors import RegistryError
    from providers.registry.config import parse_config

    seed = yaml.safe_load((ROOT / "config" / "providers.yaml").read_text())
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                       st.sampled_from(["${X}", "${", "$$", "${A:-${B}}", "✓"]))
    trees = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                         max_leaves=20)
    cases, failures = [0], []

    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(doc=st.one_of(trees, trees.map(lambda t: {**seed, "embeddings": t}),
                         trees.map(lambda t: {**seed, "registry": t})))
    def run(doc: Any) -> None:
        cases[0] += 1
        try:
            parse_config(doc, {"X": "x", "A": "", "B": "b"})
        except RegistryError:
            pass
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {str(exc)[:100]}")
    run()
    return cases[0], len(failures), failures[:5]


# -- overload ---------------------------------------------------------------------------------

OVERLOAD_CONNECTIONS = 2000
PROBES = 40  # of the connections: Python clients timing each request (wrk times all answers together)
WRK_LUA = r"""
counter = 0
tid = 0
threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  ok = 0; refused = 0; other = 0; retry_after = 0; last_other = 0
end
function request()
  counter = counter + 1  -- a new text every time: the router's embedding cache must not answer
  local body = '{"model":"minilm","input":"overload ' .. tid .. '-' .. counter .. '"}'
  return wrk.format("POST", "/v1/embeddings", {["Content-Type"] = "application/json"}, body)
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 503 or status == 429 then
    refused = refused + 1
    if headers["retry-after"] or headers["Retry-After"] then retry_after = retry_after + 1 end
  else other = other + 1; last_other = status end
end
function done(summary, latency, requests)
  local t = {ok = 0, refused = 0, other = 0, retry_after = 0}
  local last = 0
  for _, th in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (th:get(k) or 0) end
    if (th:get("last_other") or 0) ~= 0 then last = th:get("last_other") end
  end
  local e = summary.errors
  io.write(string.format('WRKJSON {"ok":%d,"refused":%d,"other":%d,"retry_after":%d,"last_other":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"timeout":%d}\n', t.ok, t.refused, t.other, t.retry_after, last,
    e.connect, e.read, e.write, e.timeout))
end
"""


def raise_open_files(need: int) -> int:
    """2,000 sockets on each side: raise this process's soft limit (Ray's processes and wrk inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def overload_config(limits: bool) -> dict[str, Any]:
    """``make serve``'s minilm and router limits as config/providers.yaml has them; without
    limits, both queues unbounded (the router's max_ongoing_requests stays)."""
    import copy

    import yaml

    raw = yaml.safe_load((ROOT / "config" / "providers.yaml").read_text())
    minilm = copy.deepcopy(raw["embeddings"]["providers"]["minilm"])
    router: dict[str, Any] = copy.deepcopy(raw["registry"].get("router", {}))
    if not limits:
        minilm.setdefault("deployment", {})["max_queued_requests"] = -1
        router["max_queued_requests"] = -1
    return {"registry": {"app_name": "overload", "http_port": free_port(), "router": router},
            "embeddings": {"providers": {"minilm": minilm}}}


@dataclass
class Probe:
    """Closed-loop clients that time every request: before, during and after the burst."""

    http: str
    t0: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (end s, ms, status; 0 = error)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _loop(self, client: Any, k: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            start = time.monotonic()
            try:
                r = await client.post(self.http + "/v1/embeddings",
                                      json={"model": "minilm", "input": f"probe {k}-{n} {uuid.uuid4().hex[:6]}"})
                status = r.status_code
            except Exception:  # a dropped connection: an error, not an admission
                status = 0
            end = time.monotonic()
            self.samples.append((end - self.t0, (end - start) * 1000, status))

    async def run(self, clients: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            await asyncio.gather(*(self._loop(client, k) for k in range(clients)))

    def rate(self, start: float, end: float) -> float:
        return sum(1 for t, _, st in self.samples if start <= t < end and st == 200) / max(end - start, 1e-9)


def replica_names(app: str) -> set[str]:
    return {a["name"] for a in actors("SERVE_REPLICA") if f"::{app}" in a["name"]}


async def overload_burst(http: str, app: str, limits: bool, burst_s: int) -> dict[str, Any]:
    lua = Path(tempfile.mkdtemp(prefix="overload-")) / "embed.lua"
    lua.write_text(WRK_LUA)
    probe = Probe(http)
    task = asyncio.create_task(probe.run(PROBES))
    await asyncio.sleep(3.0)  # warm up (the model's first calls, the proxy's connections)
    base_start = time.monotonic() - probe.t0
    await asyncio.sleep(3.0)
    baseline = probe.rate(base_start, time.monotonic() - probe.t0)
    before = replica_names(app)
    burst_start = time.monotonic() - probe.t0
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t2", f"-c{OVERLOAD_CONNECTIONS - PROBES}", f"-d{burst_s}s", "--timeout", "60s", "-s", str(lua),
        http, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out = (await proc.communicate())[0].decode(errors="replace")
    burst_end = time.monotonic() - probe.t0
    # Recovery: the first 0.5 s window after the burst whose closed-loop rate is back at 80% of the baseline.
    recovered, t = None, burst_end
    while t < burst_end + 60:
        await asyncio.sleep(max(0.0, t + 0.5 - (time.monotonic() - probe.t0)))
        if probe.rate(t, t + 0.5) >= 0.8 * baseline:
            recovered = round(t + 0.5 - burst_end, 2)
            break
        t += 0.5
    probe.stop.set()
    await task
    after = replica_names(app)
    line = next((x for x in out.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no counts: {out[-800:]}")
    w = json.loads(line.split(" ", 1)[1])
    during = [s for s in probe.samples if burst_start <= s[0] - s[1] / 1000 and s[0] - s[1] / 1000 < burst_end]
    admitted = [ms for _, ms, st in during if st == 200]
    refused_ms = [ms for _, ms, st in during if st in (503, 429)]
    other = [st for _, _, st in during if st not in (200, 503, 429)]
    socket_errors = w["connect"] + w["read"] + w["write"] + w["timeout"]
    n_admitted = w["ok"] + len(admitted)
    n_refused = w["refused"] + len(refused_ms)

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 1) if values else None

    return {"fault": f"overload, {OVERLOAD_CONNECTIONS} connections, queue limits {'on' if limits else 'off'}",
            "requests": n_admitted + n_refused + w["other"] + len(other) + socket_errors,
            "failed": w["other"] + len(other) + socket_errors, "failed_with_fallback": 0,
            "recovered_after_s": recovered, "lost": 0, "writes_acknowledged": 0, "writes_unverified": 0,
            "error_p99_ms": pct(refused_ms, 99),
            "max_latency_ms": round(max(ms for _, ms, _ in during), 1) if during else None,
            "first_error": (f"HTTP {w['last_other']}" if w["other"] else
                            f"socket errors {w['connect']}/{w['read']}/{w['write']}/{w['timeout']} "
                            "(connect/read/write/timeout)" if socket_errors else None),
            "overload": {"limits": limits, "burst_s": burst_s, "connections": OVERLOAD_CONNECTIONS,
                         "admitted": n_admitted, "refused": n_refused,
                         "refused_with_retry_after": w["retry_after"] + len(refused_ms),
                         "admitted_per_s": round(n_admitted / max(burst_end - burst_start, 1e-9), 1),
                         "baseline_per_s": round(baseline, 1),
                         "admitted_p50_ms": pct(admitted, 50), "admitted_p99_ms": pct(admitted, 99),
                         "admitted_sampled": len(admitted), "refused_p99_ms": pct(refused_ms, 99),
                         "socket_errors": socket_errors,
                         "replicas_restarted": len(before - after)}}


def run_overload(quick: bool) -> list[dict[str, Any]]:
    """Both bursts, each on a fresh Ray and registry (a queue left by one must not slow the other)."""
    import ray
    from ray import serve

    from providers.registry.config import parse_config
    from serve_app.main import ensure_ray, start_registry

    raise_open_files(2 * OVERLOAD_CONNECTIONS + 1024)
    rows = []
    for limits in (True, False):
        ensure_ray(address="local", num_cpus=16, env_vars={"PYTHONPATH": str(ROOT)})
        try:
            info = start_registry(parse_config(overload_config(limits)))
            row = asyncio.run(overload_burst(info["http"], "overload", limits, 5 if quick else 10))
        finally:
            serve.shutdown()
            ray.shutdown()
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


# -- output -----------------------------------------------------------------------------------

def markdown(rows: list[dict[str, Any]], fuzz: dict[str, Any], quick: bool) -> str:
    lines = [f"Measured by `python benchmarks/reliability_report.py{' --quick' if quick else ''}` "
             f"({time.strftime('%Y-%m-%d')}, this 2-core machine):", "",
             "| fault | requests | failed | failed with a fallback | recovered after (s) | lost | duplicated "
             "| error p99 (ms) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in (r for r in rows if "overload" not in r):
        rec = "not within the wait" if r["recovered_after_s"] is None else r["recovered_after_s"]
        lines.append(f"| {r['fault']} | {r['requests']} | {r['failed']} | {r['failed_with_fallback']} | {rec} "
                     f"| {r['lost']} | {'-' if r.get('duplicated') is None else r['duplicated']} "
                     f"| {r['error_p99_ms'] if r['error_p99_ms'] is not None else '-'} |")
    over = [r for r in rows if "overload" in r]
    if over:
        lines += ["", "Overload (one-text embeddings against `make serve`'s minilm; admitted latency from "
                  f"{PROBES} timed clients among the connections):", "",
                  "| queue limits | requests | admitted | refused 503 (with Retry-After) | other errors "
                  "| admitted p50 / p99 (ms) | recovered after (s) | replicas restarted |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in over:
            o = r["overload"]
            rec = "not within 60 s" if r["recovered_after_s"] is None else r["recovered_after_s"]
            lines.append(f"| {'on' if o['limits'] else 'off'} | {r['requests']} | {o['admitted']} | {o['refused']} "
                         f"({o['refused_with_retry_after']}) | {r['failed']} | {o['admitted_p50_ms']} / "
                         f"{o['admitted_p99_ms']} | {rec} | {o['replicas_restarted']} |")
    lines += ["", f"Fuzzing: {fuzz['fuzz_cases']} cases ({fuzz['http_cases']} HTTP requests over every endpoint, "
                  f"{fuzz['config_cases']} providers.yaml documents), {fuzz['fuzz_failures']} failures."]
    return "\n".join(lines)


def write_readme(text: str) -> None:
    path = ROOT / "docs" / "reliability.md"
    readme = path.read_text()
    if START not in readme or END not in readme:
        print(f"{path} has no reliability markers; table not written", file=sys.stderr)
        return
    head, rest = readme.split(START, 1)
    path.write_text(head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1])


async def run_all(info: dict[str, Any], tmp: Path, fault_file: Path, quick: bool,
                  only: str | None = None) -> list[dict[str, Any]]:
    http = info["http"]
    await seed_graph(http)
    import httpx

    async with httpx.AsyncClient(timeout=30) as client:  # health monitoring on, as in production
        r = await client.post(http + "/v1/admin/monitoring", json={"enabled": True},
                              headers={"Authorization": f"Bearer {os.environ[TOKEN_ENV]}"})
        r.raise_for_status()
    faults = Faults(http, tmp, fault_file, window_s=2.0 if quick else 10.0)
    rows = []
    for name, method, kinds in FAULTS:
        if only and only not in name:
            continue
        row = await run_fault(faults, http, name, method, kinds, settle_s=1.0 if quick else 5.0)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    await faults.client.aclose()
    if not only or only in _durability.NAME:
        for row in await _durability.rows(http, APP, tmp / "pg", tmp / "valkey", quick):
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    return rows


ROW_KEYS = ("fault", "requests", "failed", "recovered_after_s", "lost", "duplicated", "resent", "failed_with_fallback",
            "writes_acknowledged", "writes_unverified", "error_p99_ms", "max_latency_ms", "first_error")


EXTRA_KEYS = ("overload", "durability", "node_loss")


def row_json(r: dict[str, Any]) -> dict[str, Any]:
    """A row's keys as every row has them; an overload, durability or node-loss row adds its own counts."""
    return {**{k: r.get(k) for k in ROW_KEYS}, **{k: r[k] for k in EXTRA_KEYS if k in r}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-readme", action="store_true", help="do not write the table into docs/reliability.md")
    ap.add_argument("--only", help="run the faults whose name contains this (implies --no-readme)")
    ap.add_argument("--soak", type=float, metavar="MINUTES",
                    help="a long run of mixed traffic with swaps and kills instead of the faults (implies --no-readme)")
    args = ap.parse_args()
    if args.soak:
        soak = _soak.run(sys.modules[__name__], args.soak)
        print(json.dumps({"benchmark": "reliability_report", "quick": args.quick, "faults": [], "soak": soak}))
        return 0

    import ray
    from ray import serve

    from providers.registry.config import parse_config
    from providers.vector_stores import embedded_postgres
    from serve_app.main import ensure_ray, start_registry

    # The overload rows drive 2,000 connections with Debian's wrk: said at once, not
    # after 15 minutes of faults and fuzzing (a run on a fresh machine died there).
    if (not args.only or args.only in "overload") and not shutil.which("wrk"):
        print("error: the overload rows need wrk (Debian: apt-get install wrk); "
              "--only NAME runs other rows without it", file=sys.stderr)
        return 2
    if args.only and args.only in _node_loss.NAME:  # a cluster of its own (three raylets)
        rows = _node_loss.rows()
        print(json.dumps({"benchmark": "reliability_report", "quick": args.quick,
                          "faults": [row_json(r) for r in rows]}))
        return 0
    if args.only and args.only in "overload":
        rows = run_overload(args.quick)
        print(json.dumps({"benchmark": "reliability_report", "quick": args.quick,
                          "faults": [row_json(r) for r in rows]}))
        return 0
    os.environ.setdefault(TOKEN_ENV, uuid.uuid4().hex)  # inherited by Ray's workers, never logged
    tmp = Path(tempfile.mkdtemp(prefix="reliability-"))
    fault_file = tmp / "fault"
    set_faults(fault_file)
    ensure_ray(address="local", num_cpus=16, env_vars={"PYTHONPATH": str(ROOT)})
    try:
        info = start_registry(parse_config(registry_config(tmp, fault_file)))
        rows = asyncio.run(run_all(info, tmp, fault_file, args.quick, args.only))
        # --only: the faults asked for, not the fuzzing (minutes of it)
        http_cases, http_failures, http_examples = (0, 0, []) if args.only else fuzz_http(
            info["http"], 3 if args.quick else 15)
    finally:
        serve.shutdown()
        ray.shutdown()
        embedded_postgres.stop(str(tmp / "pg"))
        from providers.caches import embedded_valkey

        embedded_valkey.release(tmp / "valkey", set())
    if not args.only:
        rows += run_overload(args.quick)
        rows += _node_loss.rows()
    config_cases, config_failures, config_examples = (0, 0, []) if args.only else fuzz_config(
        200 if args.quick else 2000)
    fuzz = {"fuzz_cases": http_cases + config_cases, "fuzz_failures": http_failures + config_failures,
            "http_cases": http_cases, "config_cases": config_cases,
            "fuzz_failure_examples": http_examples + config_examples}
    if not args.no_readme and not args.only:
        write_readme(markdown(rows, fuzz, args.quick))
    print(json.dumps({"benchmark": "reliability_report", "quick": args.quick,
                      "faults": [row_json(r) for r in rows], **fuzz}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
