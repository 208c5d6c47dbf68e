"""Crash after acknowledge (issue 16, part 4): writes answered 2xx, a kill -9, everything read back.

Shared by tests/integration/test_durability.py and the reliability report's
durability rows, so both count a loss the same way:

- `kill_replicas`, `kill_postgres`, `kill_valkey`: SIGKILL of the exact
  processes (a replica's pid asked of the replica itself; PostgreSQL's from
  its ``postmaster.pid`` and the postmaster's children; Valkey's from INFO),
  never ``ray.kill`` (Serve's own, orderly path) and never by name;
- `crash_after_acks`: writers run against the HTTP API until ``before`` writes
  were acknowledged, the crash runs, and the writers go on until ``after``
  more were acknowledged *after* it (triggers by count, not by time); then
  every acknowledged item is read back: 404 is a loss, 200 kept, anything
  else after a generous deadline unverified. A write that failed or was in
  flight during the crash was never promised: it may be there or not.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

# -- processes ---------------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    """Running, not a zombie: a daemonized postmaster's parent here may never reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def sigkill(pids: list[int], timeout_s: float = 60.0) -> list[int]:
    """SIGKILL each pid in order, then wait until none runs; the pids killed."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            raise AssertionError(f"still running {timeout_s:g} s after SIGKILL: {[p for p in pids if _alive(p)]}")
        time.sleep(0.05)
    return pids


def replica_pids(prefix: str) -> list[int]:
    """The pids of the Serve replicas whose actor name starts with ``SERVE_REPLICA::<prefix>``,
    asked of each replica (``__ray_call__`` runs a function in the actor)."""
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == "serve" and a["name"].startswith(f"SERVE_REPLICA::{prefix}")]
    return [ray.get(ray.get_actor(n, namespace="serve").__ray_call__.remote(lambda _: os.getpid()), timeout=60)
            for n in names]


def kill_replicas(prefix: str) -> list[int]:
    pids = replica_pids(prefix)
    if not pids:
        raise AssertionError(f"no replica named SERVE_REPLICA::{prefix}*")
    return sigkill(pids)


def _children(ppid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == ppid:
                    kids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return kids


def kill_postgres(data_dir: str | os.PathLike[str]) -> list[int]:
    """The embedded PostgreSQL's postmaster first (so it cannot start a crash
    recovery of its own when its backends die), then every process it forked."""
    postmaster = int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
    return sigkill([postmaster, *_children(postmaster)])


def valkey_pid(data_dir: str | os.PathLike[str]) -> int:
    from providers.caches import embedded_valkey

    sock = embedded_valkey.socket_path(Path(data_dir).resolve())
    info = embedded_valkey._command(sock, "INFO", "server").decode()
    return int(next(line.split(":")[1] for line in info.splitlines() if line.startswith("process_id:")))


def kill_valkey(data_dir: str | os.PathLike[str]) -> list[int]:
    return sigkill([valkey_pid(data_dir)])


# -- what is written, and where it is read back --------------------------------------------------

@dataclass(frozen=True)
class Store:
    """One kind of acknowledged write: its request, and the reads that prove it kept."""

    label: str
    write: Callable[[str], tuple[str, dict[str, Any]]]  # tag -> (path, body)
    reads: Callable[[dict[str, Any], str], list[str]]  # (2xx answer, tag) -> paths that must answer 200


def documents(store: str) -> Store:
    return Store(f"vector documents ({store})",
                 lambda tag: (f"/v1/vector_stores/{store}/documents",
                              {"documents": [{"id": tag, "content": f"durable document {tag}"}]}),
                 lambda answer, tag: [f"/v1/vector_stores/{store}/documents/{quote(i, safe='')}"
                                      for i in answer["ids"]])


def episodes(manager: str) -> Store:
    def reads(answer: dict[str, Any], tag: str) -> list[str]:
        ids = [answer["episode_id"], *answer["entity_ids"]]
        return [f"/v1/graph/{manager}/entities/{quote(i, safe=':')}" for i in ids]

    return Store(f"graph episodes ({manager})",
                 lambda tag: (f"/v1/graph/{manager}/episodes",
                              {"content": f"durable episode {tag}", "source": "durability",
                               "entities": [{"name": f"thing {tag}", "entity_type": "Thing"}]}),
                 reads)


def memories(tool: str, store: str) -> Store:
    return Store(f"{tool} -> {store}",
                 lambda tag: (f"/v1/tools/{tool}", {"memories": [{"id": tag, "content": f"durable memory {tag}"}]}),
                 lambda answer, tag: [f"/v1/vector_stores/{store}/documents/{quote(i, safe='')}"
                                      for i in answer["result"]["ids"]])


# -- the run -----------------------------------------------------------------------------------

@dataclass
class Writers:
    http: str
    store: Store
    t0: float = field(default_factory=time.monotonic)
    acked: list[tuple[float, list[str]]] = field(default_factory=list)  # (request start, reads)
    failed: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    crashed_at: float | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def acked_after_crash(self) -> int:
        return sum(1 for t, _ in self.acked if self.crashed_at is not None and t > self.crashed_at)

    async def _loop(self, client: Any) -> None:
        while not self.stop.is_set():
            tag = f"dur-{uuid.uuid4().hex[:12]}"
            path, body = self.store.write(tag)
            start = time.monotonic() - self.t0
            ok = False
            try:
                r = await client.post(self.http + path, json=body)
                ok = r.status_code < 300
                if ok:
                    self.acked.append((start, self.store.reads(r.json(), tag)))
                else:
                    self.failed.append(f"{r.status_code} {r.text[:200]}")
            except Exception as exc:  # a connection cut by the crash: failed, never promised
                self.failed.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            self.latencies_ms.append((time.monotonic() - self.t0 - start) * 1000)
            self.changed.set()
            if not ok:
                await asyncio.sleep(0.05)  # while the store is down: keep trying, without a busy loop

    async def wait_until(self, predicate: Callable[[], bool], what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.store.label}: {what}: not within {timeout_s:g} s "
                                   f"(acknowledged {len(self.acked)}, failed {len(self.failed)}, "
                                   f"last error {self.failed[-1] if self.failed else None})")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass


async def read_back(client: Any, http: str, paths: list[str], timeout_s: float = 60.0) -> tuple[int, int]:
    """``(lost, unverified)`` among ``paths``: 404 is lost; only 200 is kept."""
    sem = asyncio.Semaphore(8)

    async def state(path: str) -> str:
        deadline = time.monotonic() + timeout_s
        async with sem:
            while time.monotonic() < deadline:
                try:
                    r = await client.get(http + path)
                    if r.status_code == 200:
                        return "kept"
                    if r.status_code == 404:
                        return "lost"
                except Exception:
                    pass
                await asyncio.sleep(0.3)
            return "unverified"

    states = await asyncio.gather(*(state(p) for p in paths))
    return states.count("lost"), states.count("unverified")


async def crash_after_acks(http: str, stores: list[Store], crash: Callable[[], Awaitable[Any] | Any],
                           before: int = 10, after: int = 10, clients: int = 2,
                           timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """One crash under the writers of every store in ``stores``; a result per store."""
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        runs = [Writers(http, s) for s in stores]
        tasks = [asyncio.create_task(w._loop(client)) for w in runs for _ in range(clients)]
        try:
            for w in runs:
                await w.wait_until(lambda w=w: len(w.acked) >= before, f"{before} writes acknowledged", timeout_s)
            crashed = time.monotonic()
            for w in runs:
                w.crashed_at = crashed - w.t0
            result = crash()
            if asyncio.iscoroutine(result):
                await result
            for w in runs:
                await w.wait_until(lambda w=w: w.acked_after_crash() >= after,
                                   f"{after} writes acknowledged after the crash", timeout_s)
        finally:
            for w in runs:
                w.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        out = []
        for w in runs:
            first_after = min((t for t, _ in w.acked if t > w.crashed_at), default=None)
            lost, unverified = await read_back(client, http, [p for _, paths in w.acked for p in paths])
            out.append({"store": w.store.label, "writes_acknowledged": len(w.acked), "lost": lost,
                        "writes_unverified": unverified, "requests": len(w.latencies_ms), "failed": len(w.failed),
                        "recovered_after_s": None if first_after is None else round(first_after - w.crashed_at, 2),
                        "max_latency_ms": round(max(w.latencies_ms), 1) if w.latencies_ms else None,
                        "first_error": w.failed[0] if w.failed else None})
        return out
