"""deployments/read_merging.py with the provider replaced by a function: which caller
hears what when a merged call answers some items and fails others. The end-to-end
case on pgvector is tests/integration/test_router_core.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from deployments.read_merging import ReadMerger
from providers.errors import InvalidRequestError, ProviderCallError
from providers.registry.config import RegistrySettings
from providers.registry.routing import FallbackCaller
from providers.types import ProviderType


class FakeCore:
    """What ReadMerger uses of a RouterCore; ``answer(name, query)`` plays the provider."""

    def __init__(self, answer, chain=("store",)):
        self.settings = RegistrySettings()
        self.caller = FallbackCaller()
        self.guards = []
        self._chain = list(chain)
        self.answer = answer
        self.sent: list[tuple[str, int]] = []  # (provider, calls in the message)

    def chain(self, ptype, name):
        return self._chain

    @property
    def table(self):
        spec = SimpleNamespace(call_timeout_s=30.0, deployment=SimpleNamespace(autoscaling_config=None,
                                                                                num_replicas=1))
        return SimpleNamespace(get=lambda ptype, name: SimpleNamespace(type=ptype, name=name, spec=spec))

    def handle(self, route):
        core = self

        async def many(method, args_list, kwargs_list):
            core.sent.append((route.name, len(args_list)))
            await asyncio.sleep(0)
            out = []
            for args in args_list:
                try:
                    out.append((True, core.answer(route.name, args[0])))
                except Exception as exc:
                    out.append((False, exc))
            return out

        return SimpleNamespace(invoke_many=SimpleNamespace(remote=many))

    async def call_chain(self, ptype, name, method, args, kwargs, use_fallback, chain=None):
        async def attempt(candidate, timeout):
            self.sent.append((candidate, 1))
            await asyncio.sleep(0)
            return self.answer(candidate, args[0])
        return await self.caller.call(ptype.value, chain or [name], attempt, lambda n: 30.0)


def route(name="store"):
    return SimpleNamespace(type=ProviderType.VECTOR_STORE, name=name,
                           spec=SimpleNamespace(deployment=SimpleNamespace(autoscaling_config=None, num_replicas=1)))


async def run_all(merger, queries):
    return await asyncio.gather(*(merger.call(route(), "search_by_ids", [q], {}, True) for q in queries),
                                return_exceptions=True)


async def test_each_caller_hears_its_own_answer_and_its_own_bad_input():
    def answer(name, q):
        if q == "bad":
            raise InvalidRequestError("no such id", "document_ids")
        return f"{name}:{q}"

    core = FakeCore(answer)
    merger = ReadMerger(core)
    out = await run_all(merger, ["a", "b", "bad", "c", "d", "e"])
    assert out[:2] == ["store:a", "store:b"] and out[3:] == ["store:c", "store:d", "store:e"]
    assert isinstance(out[2], InvalidRequestError) and out[2].field == "document_ids"
    assert any(n > 1 for _, n in core.sent), core.sent  # merged: calls queued behind the first
    assert sum(n for _, n in core.sent) == 6  # and nothing ran twice


async def test_items_the_provider_failed_are_rerun_alone_and_a_failing_provider_goes_to_the_fallback():
    flaky = {"c": 1}  # fails once for "c", then answers

    def answer(name, q):
        if name == "store" and q == "c" and flaky["c"]:
            flaky["c"] -= 1
            raise RuntimeError("connection reset")
        if name == "store" and q == "down":
            raise RuntimeError("store down")
        return f"{name}:{q}"

    core = FakeCore(answer, chain=("store", "backup"))
    out = await run_all(ReadMerger(core), ["a", "b", "c", "d", "e"])
    assert out == ["store:a", "store:b", "store:c", "store:d", "store:e"]
    assert ("store", 1) in core.sent[2:]  # "c" again, alone

    core = FakeCore(lambda name, q: (_ for _ in ()).throw(RuntimeError("store down")) if name == "store"
                    else f"{name}:{q}", chain=("store", "backup"))
    out = await run_all(ReadMerger(core), ["a", "b", "c", "d"])
    assert out == ["backup:a", "backup:b", "backup:c", "backup:d"]  # every item failed: the chain moved on
    assert core.caller.usage("vector_stores/store").failures >= 2

    core = FakeCore(lambda name, q: (_ for _ in ()).throw(RuntimeError("down")), chain=("store",))
    out = await run_all(ReadMerger(core), ["a", "b", "c"])
    assert all(isinstance(o, ProviderCallError) and "down" in str(o) for o in out), out


async def test_merging_off_sends_each_call_alone():
    core = FakeCore(lambda name, q: q)
    core.settings = RegistrySettings(router={"merge_reads": False})
    merger = ReadMerger(core)
    assert not merger.merges(route(), "search_by_ids")
    core.settings = RegistrySettings()
    assert ReadMerger(core).merges(route(), "search_by_ids")
    assert not ReadMerger(core).merges(route(), "store_documents")
