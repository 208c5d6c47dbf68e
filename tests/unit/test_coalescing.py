"""The coalescer merges concurrent list calls per key; plain asyncio, no Ray."""

from __future__ import annotations

import asyncio

import pytest

from providers.registry.coalescing import Coalescer


class Recorder:
    """A flush function that records each merged call and echoes items doubled."""

    def __init__(self, delay_s: float = 0.02, fail_on: str | None = None) -> None:
        self.calls: list[tuple[object, list[str], int]] = []
        self.delay_s = delay_s
        self.fail_on = fail_on

    async def __call__(self, key, items, callers):
        self.calls.append((key, list(items), callers))
        await asyncio.sleep(self.delay_s)
        if self.fail_on in items:
            raise RuntimeError(f"bad item {self.fail_on}")
        return [f"{i}{i}" for i in items]


async def test_a_lone_call_goes_out_at_once():
    rec = Recorder(delay_s=0)
    c = Coalescer(rec, wait_s=10)  # a lone caller must not wait for the window
    result = await asyncio.wait_for(c.submit("k", ["a"]), 1)
    assert result == ["aa"] and len(rec.calls) == 1


async def test_calls_arriving_while_one_is_in_flight_are_merged_in_order():
    rec = Recorder(delay_s=0.05)
    c = Coalescer(rec, wait_s=0.01)
    first = asyncio.ensure_future(c.submit("k", ["a"]))
    await asyncio.sleep(0.005)  # "a" is in flight now
    rest = [asyncio.ensure_future(c.submit("k", [f"b{i}", f"c{i}"])) for i in range(5)]
    results = await asyncio.gather(first, *rest)
    assert results[0] == ["aa"]
    assert results[1:] == [[f"b{i}b{i}", f"c{i}c{i}"] for i in range(5)]
    assert len(rec.calls) == 2 and rec.calls[1][2] == 5 and len(rec.calls[1][1]) == 10


async def test_keys_are_never_mixed():
    rec = Recorder(delay_s=0.03)
    c = Coalescer(rec, wait_s=0.01)
    blockers = [asyncio.ensure_future(c.submit(k, ["x"])) for k in ("k1", "k2")]
    await asyncio.sleep(0.005)
    got = await asyncio.gather(*blockers, c.submit("k1", ["p"]), c.submit("k2", ["q"]))
    assert got[2:] == [["pp"], ["qq"]]
    allowed = {"k1": {"x", "p"}, "k2": {"x", "q"}}
    for key, items, _ in rec.calls:
        assert set(items) <= allowed[key], (key, items)


async def test_max_items_splits_batches():
    rec = Recorder(delay_s=0.03)
    c = Coalescer(rec, wait_s=0.05, max_items=4)
    blocker = asyncio.ensure_future(c.submit("k", ["z"]))
    await asyncio.sleep(0.005)
    calls = [asyncio.ensure_future(c.submit("k", [f"t{i}", f"u{i}"])) for i in range(4)]
    await asyncio.gather(blocker, *calls)
    assert max(len(items) for _, items, _ in rec.calls) <= 4


async def test_a_failed_batch_fails_every_caller_in_it():
    rec = Recorder(delay_s=0.03, fail_on="bad")
    c = Coalescer(rec, wait_s=0.01)
    blocker = asyncio.ensure_future(c.submit("k", ["ok"]))
    await asyncio.sleep(0.005)
    merged = [asyncio.ensure_future(c.submit("k", [t])) for t in ("bad", "fine")]
    assert await blocker == ["okok"]
    for fut in merged:
        with pytest.raises(RuntimeError, match="bad item"):
            await fut


async def test_wrong_result_count_is_an_error_not_a_misaligned_answer():
    async def short(key, items, callers):
        return items[:-1]

    c = Coalescer(short, wait_s=0.01)
    with pytest.raises(RuntimeError, match="results for"):
        await c.submit("k", ["a", "b"])


async def test_in_flight_limit_makes_batches_grow_with_load():
    """With one call in flight allowed, everything arriving meanwhile forms the next batch."""
    rec = Recorder(delay_s=0.03)
    c = Coalescer(rec, wait_s=1.0)
    first = asyncio.ensure_future(c.submit("k", ["a"], max_inflight=1))
    await asyncio.sleep(0.005)
    rest = [asyncio.ensure_future(c.submit("k", [f"t{i}"], max_inflight=1)) for i in range(20)]
    await asyncio.gather(first, *rest)
    assert [len(items) for _, items, _ in rec.calls] == [1, 20]


class HeldRecorder(Recorder):
    """Holds a call with the item "slow" until ``release`` is set: slow for as long as a test needs."""

    def __init__(self) -> None:
        super().__init__(delay_s=0)
        self.release = asyncio.Event()

    async def __call__(self, key, items, callers):
        if "slow" in items:
            self.calls.append((key, list(items), callers))
            await self.release.wait()
            return [f"{i}{i}" for i in items]
        return await super().__call__(key, items, callers)


async def test_wait_s_caps_the_wait_behind_a_slow_call():
    rec = HeldRecorder()
    c = Coalescer(rec, wait_s=0.02)
    slow = asyncio.ensure_future(c.submit("k", ["slow"], max_inflight=1))
    while not rec.calls:  # the slow call is in flight
        await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    t = loop.time()
    # launched after wait_s, while the slow call is still held: not after it
    assert await asyncio.wait_for(c.submit("k", ["next"], max_inflight=1), 60) == ["nextnext"]
    assert len(rec.calls) == 2 and not slow.done()
    assert loop.time() - t >= 0.019  # it did wait for the window first
    rec.release.set()
    assert await slow == ["slowslow"]
