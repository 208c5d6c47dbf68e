"""Concurrent reads of one provider, merged into one provider call (issue 13, part 3).

Every Serve hop costs more CPU than a cheap read behind it (a pgvector search
is about 1 ms in process, 3-4 ms through a hop on this machine). When several
callers read the same provider at once, the router sends their calls in one
message (`ProviderDeployment.invoke_many`), the replica runs them
concurrently (the store's connection pool, the cache's client), and each
answer goes back to its caller. The rule is the embeddings coalescer's
(`providers.registry.coalescing.Coalescer`): a call goes at once while fewer
than ``merge_inflight_per_replica`` merged calls per replica are in flight,
so a lone call never waits; only calls that would have queued behind those
are merged, and batches grow with load.

Measured (`python benchmarks/vector_search.py --quick`, 5,000 vectors, 8
clients, pgvector at ef_search 100, 2026-12-05, this 2-core machine): one hop
(`ProviderRegistry(direct=True)`) 282 searches/s alone, 372 merged with 2 in
flight per replica, 470 with 1; over HTTP 266, 289, 336; through the router
172, 204, 232; in process 1,000-1,086.

Semantics stay those of one call per caller:

- guards and limits run per call before merging (`RouterCore.call`);
- one caller's bad input (a caller error: 4xx) fails only that caller;
- the deadline, breaker and fallback chain apply to the merged call: a
  replica that fails or misses its deadline sends the whole batch down the
  chain, as it would each call;
- a provider error on some items only (the others answered) is rerun for
  those callers alone through the ordinary path (deadline, breaker, fallback):
  the reads are harmless to run twice, and the caller hears exactly what a
  lone call would have heard;
- answers are checked item by item (`providers.registry.results.check_result`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from providers.registry.coalescing import Coalescer
from providers.registry.results import check_result
from providers.registry.routing import CALLER_ERRORS
from providers.types import ProviderType

if TYPE_CHECKING:
    from deployments.router_core import RouterCore
    from providers.registry.table import Route

# Reads that are cheap per call and called concurrently: what merging pays for.
# Writes are left alone (their idempotency and order are the caller's), except a
# cache's sets: setting a key twice to the same value is the same cache, and
# concurrent callers' sets had no order between them to keep.
MERGEABLE: dict[ProviderType, frozenset[str]] = {
    ProviderType.VECTOR_STORE: frozenset({"search_similar", "hybrid_search", "search_by_ids", "get_document",
                                          "count_documents"}),
    ProviderType.RERANKER: frozenset({"rerank"}),
    ProviderType.CACHE: frozenset({"get", "get_many", "exists", "set", "set_many"}),
    ProviderType.GRAPH_ENGINE: frozenset({"get_entity", "get_connected_entities", "find_entities",
                                          "entity_exists", "get_relationship"}),
}


class ReadMerger:
    """Merges `RouterCore.call`'s concurrent reads of one provider and method."""

    def __init__(self, core: RouterCore) -> None:
        self.core = core
        r = core.settings.router
        self.enabled = r.merge_reads and r.coalesce_wait_s > 0
        self.per_replica = r.merge_inflight_per_replica
        self.coalescer = Coalescer(self._flush, r.coalesce_wait_s, r.merge_max_calls)

    def merges(self, route: Route, method: str) -> bool:
        return self.enabled and method in MERGEABLE.get(route.type, ())

    async def call(self, route: Route, method: str, args: list[Any], kwargs: dict[str, Any],
                   use_fallback: bool) -> Any:
        chain = self.core.chain(route.type, route.name) if use_fallback else [route.name]
        d = route.spec.deployment
        replicas = d.autoscaling_config.max_replicas if d.autoscaling_config else (d.num_replicas or 1)
        key = (route.type.value, route.name, method, tuple(chain))
        ((ok, value),) = await self.coalescer.submit(key, [(args, kwargs)], replicas * self.per_replica)
        if not ok:
            raise value
        return value

    async def _flush(self, key: tuple[str, str, str, tuple[str, ...]], items: list[tuple[list[Any], dict[str, Any]]],
                     callers: int) -> list[tuple[bool, Any]]:
        kind, name, method, chain = key
        ptype = ProviderType(kind)
        if len(items) == 1:  # alone: the ordinary call, its errors exactly as they are
            args, kwargs = items[0]
            return [await _outcome(self.core.call_chain(ptype, name, method, args, kwargs, True, chain=list(chain)))]
        core = self.core

        async def attempt(candidate: str, timeout_s: float) -> list[tuple[bool, Any]]:
            route = core.table.get(ptype, candidate)
            for guard in core.guards:
                await guard.before_attempt(core, route, method)
            response = core.handle(route).invoke_many.remote(method, [a for a, _ in items], [k for _, k in items])
            try:
                outcomes = await response
            except asyncio.CancelledError:
                response.cancel()  # the deadline passed: free the provider replica too
                raise
            checked = []
            for (args, kwargs), (ok, value) in zip(items, outcomes):
                if ok:
                    try:
                        check_result(ptype, method, args, kwargs, value)
                    except Exception as exc:  # malformed for this caller: rerun alone below
                        ok, value = False, exc
                checked.append((ok, value))
            failed = [v for ok, v in checked if not ok and not isinstance(v, CALLER_ERRORS)]
            if failed and len(failed) == len(checked):
                raise failed[0]  # the provider fails every call: the chain's business (breaker, fallback)
            return checked

        outcomes = await core.caller.call(kind, list(chain), attempt,
                                          lambda n: core.table.get(ptype, n).spec.call_timeout_s, callers)
        reruns = {i: asyncio.ensure_future(_outcome(core.call_chain(ptype, name, method, *items[i], True,
                                                                    chain=list(chain))))
                  for i, (ok, value) in enumerate(outcomes) if not ok and not isinstance(value, CALLER_ERRORS)}
        for i, rerun in reruns.items():
            outcomes[i] = await rerun
        return outcomes


async def _outcome(call: Any) -> tuple[bool, Any]:
    try:
        return True, await call
    except Exception as exc:
        return False, exc
