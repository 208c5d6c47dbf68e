"""Is anything alive behind a provider that is not answering? Asked when a call is late.

When a node is lost (a SIGKILLed raylet, a machine gone), its replica of a
provider is gone at once, but a caller does not hear it: Serve's router holds
the call for a replica that can answer (the replacement Serve starts is
``PENDING_CREATION`` for as long as no node has the resources it asks for),
so without this check the caller waits out the whole deadline and hears 504,
call after call, until the breaker has counted enough of them. Measured on
the node-loss test (tests/cluster/test_node_loss.py, 2026-12-05): within 2 s
of the SIGKILL the GCS had the old replica ``DEAD`` and its replacement
``PENDING_CREATION``; Serve's router still held calls for it.

So half-way to a late call's deadline (`providers.registry.routing.FallbackCaller`)
the router reads the provider's replica actors from the GCS (class
``ServeReplica:<app>:<deployment>``, ``ray/serve/_private/common.py``):

- an ``ALIVE`` replica whose worker port accepts a TCP connection: alive,
  however slow; the call keeps its deadline;
- ``ALIVE`` replicas that all refuse (a dead worker) or do not answer within
  ``CONNECT_TIMEOUT_S`` (a machine gone) before the GCS noticed: none reachable;
- none ``ALIVE``, one being started or restarted: no replica is running.

The last two end the call as unavailable: a 503 naming the provider (and why)
before the deadline, or the fallback sooner; each counts as a failure for the
breaker, which then answers at once. Nothing listed at all tells nothing.

One probe per application at a time, its answer kept ``CACHE_S``: under an
overload many calls are late at once, and the GCS must not pay for each.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

CONNECT_TIMEOUT_S = 0.5
CACHE_S = 1.0


def replica_actors(class_name: str) -> list[tuple[str, str, int]]:
    """(state, host, port) of the actors of ``class_name`` that are alive or on their way
    (a GCS read: blocking). Read by state: the DEAD history can be long."""
    from ray._private.state import state

    out = []
    for wanted in ("ALIVE", "PENDING_CREATION", "RESTARTING", "DEPENDENCIES_UNREADY"):
        for a in state.actor_table(None, actor_state_name=wanted).values():
            if a.get("ActorClassName") == class_name:
                out.append((wanted, a["Address"]["IPAddress"], int(a["Address"]["Port"] or 0)))
        if wanted == "ALIVE" and out:
            break  # enough to decide: ask whether they answer
    return out


async def reachable(host: str, port: int, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """None if ``host:port`` accepts a TCP connection within ``timeout_s``, else why not."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except asyncio.TimeoutError:
        return f"{host}:{port} did not answer in {timeout_s:g}s"
    except OSError as exc:  # asyncio's own text ("Connect call failed") hides the errno's
        return f"{host}:{port} {os.strerror(exc.errno).lower() if exc.errno else type(exc).__name__}"
    writer.close()
    return None


class ReplicaLiveness:
    """``await liveness(kind, name)``: None while some replica of the provider is reachable
    (or nothing can be told), else a reason that says none is."""

    def __init__(self, app_of: Callable[[str, str], str | None], deployment: str,
                 lookup: Callable[[str], list[tuple[str, str, int]]] = replica_actors,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app_of = app_of  # (kind, name) -> the provider's current Serve application
        self.deployment = deployment
        self.lookup = lookup
        self.clock = clock
        self._answers: dict[str, tuple[float, str | None]] = {}
        self._probes: dict[str, asyncio.Future[str | None]] = {}

    async def __call__(self, kind: str, name: str) -> str | None:
        app = self.app_of(kind, name)
        if app is None:
            return None
        cached = self._answers.get(app)
        if cached is not None and self.clock() - cached[0] < CACHE_S:
            return cached[1]
        probe = self._probes.get(app)
        if probe is None:
            probe = self._probes[app] = asyncio.ensure_future(self._probe(app))
            probe.add_done_callback(lambda _: self._probes.pop(app, None))
        return await asyncio.shield(probe)

    async def _probe(self, app: str) -> str | None:
        try:
            actors = await asyncio.to_thread(self.lookup, f"ServeReplica:{app}:{self.deployment}")
        except Exception:  # the GCS unreachable: nothing can be told, the deadline decides
            return None
        alive = [(h, p) for state, h, p in actors if state == "ALIVE" and p]
        answer: str | None = None
        if alive:
            reasons = await asyncio.gather(*(reachable(h, p) for h, p in alive))
            if all(r is not None for r in reasons):
                answer = f"none of its {len(alive)} replica(s) is reachable ({'; '.join(reasons)})"
        elif actors:
            states = ", ".join(sorted({state.lower() for state, _, _ in actors}))
            answer = (f"no replica is running ({len(actors)} being started: {states}; one that waits for "
                      "resources no live node has stays so until such a node joins)")
        self._answers[app] = (self.clock(), answer)
        return answer


def provider_liveness(core: Any) -> ReplicaLiveness:
    """The liveness check of a `RouterCore`'s providers (its table names their applications)."""
    from deployments.names import PROVIDER_DEPLOYMENT_NAME
    from providers.registry.table import route_key

    def app_of(kind: str, name: str) -> str | None:
        route = core.table.routes.get(route_key(kind, name))
        return core.app_name(route) if route is not None else None

    return ReplicaLiveness(app_of, PROVIDER_DEPLOYMENT_NAME)
