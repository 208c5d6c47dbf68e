"""`providers.owner_thread.OwnerThread` on real threads, and the providers built on it.

No sleeps: ordering is shown with events that one side sets and the other
waits for, so the outcome does not depend on timing.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from providers.embeddings.sentence_transformers import SentenceTransformerProvider
from providers.embeddings.vllm import VLLMEmbeddingProvider
from providers.errors import ProviderCallError
from providers.graph.ladybug import LadybugGraphClient
from providers.graph.memgraph import MemgraphGraphClient
from providers.owner_thread import OwnerThread
from providers.rerankers.cross_encoder import CrossEncoderReranker
from providers.rerankers.vllm import VLLMReranker


def owner_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(name)]


async def test_every_call_runs_on_the_one_named_thread_in_order() -> None:
    seen: list[tuple[int, str]] = []
    owner = OwnerThread("test model", thread_name="owner-order")
    owner.start()

    def record(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 10

    try:
        results = await asyncio.gather(*(owner.run(record, n) for n in range(20)))
    finally:
        await owner.close()
    assert results == [n * 10 for n in range(20)]
    assert [n for n, _ in seen] == list(range(20))
    assert len({name for _, name in seen}) == 1 and seen[0][1].startswith("owner-order")


async def test_a_call_waits_for_the_one_running_and_the_event_loop_stays_free() -> None:
    owner = OwnerThread("test model", thread_name="owner-busy")
    owner.start()
    first_started, release, second_started = threading.Event(), threading.Event(), threading.Event()

    def first() -> str:
        first_started.set()
        release.wait()
        return "first"

    def second() -> str:
        second_started.set()
        return "second"

    try:
        a = asyncio.ensure_future(owner.run(first))
        b = asyncio.ensure_future(owner.run(second))
        # The loop runs this coroutine while `first` holds the thread ...
        assert await asyncio.to_thread(first_started.wait, 60)
        # ... and `second` has not started: the one thread is busy (no timing involved).
        assert not second_started.is_set()
        release.set()
        assert await asyncio.gather(a, b) == ["first", "second"]
    finally:
        release.set()
        await owner.close()


async def test_the_initializer_runs_on_the_owner_thread() -> None:
    idents: list[int] = []
    owner = OwnerThread("test model", thread_name="owner-init", initializer=lambda: idents.append(threading.get_ident()))
    owner.start()
    try:
        assert await owner.run(threading.get_ident) == idents[0]
    finally:
        await owner.close()
    assert len(idents) == 1


async def test_errors_of_the_call_reach_the_caller() -> None:
    owner = OwnerThread("test model", thread_name="owner-err")
    owner.start()

    def fail() -> None:
        raise ValueError("bad input")

    try:
        with pytest.raises(ValueError, match="bad input"):
            await owner.run(fail)
        assert await owner.run(lambda: "still serving") == "still serving"
    finally:
        await owner.close()


async def test_a_call_before_start_names_the_owner() -> None:
    owner = OwnerThread("Test client", thread_name="owner-unstarted")
    assert not owner.running
    with pytest.raises(ProviderCallError, match="^Test client is not initialized$"):
        await owner.run(lambda: None)


async def test_close_runs_last_after_queued_calls_then_ends_the_thread() -> None:
    order: list[str] = []
    owner = OwnerThread("Test client", thread_name="owner-close")
    owner.start()
    release = threading.Event()

    def queued() -> None:
        release.wait()
        order.append("queued")

    pending = asyncio.ensure_future(owner.run(queued))
    await asyncio.sleep(0)  # let `pending` reach the thread's queue before close
    closing = asyncio.ensure_future(owner.close(lambda: order.append("last")))
    release.set()
    await asyncio.gather(pending, closing)
    assert order == ["queued", "last"]
    assert owner_threads("owner-close") == []  # joined, not left running
    with pytest.raises(ProviderCallError, match="^Test client is closed$"):
        await owner.run(lambda: None)
    await owner.close(lambda: order.append("again"))  # closing twice: nothing runs
    assert order == ["queued", "last"]


async def test_close_without_last_does_not_wait_for_a_call_in_flight() -> None:
    owner = OwnerThread("test model", thread_name="owner-nowait")
    owner.start()
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait()
        return "done"

    call = asyncio.ensure_future(owner.run(slow))
    assert await asyncio.to_thread(started.wait, 60)
    await owner.close()  # returns while `slow` still holds the thread
    assert not call.done()
    release.set()
    assert await call == "done"  # the call in flight still finishes


async def test_a_closed_one_starts_again() -> None:
    owner = OwnerThread("test model", thread_name="owner-restart")
    owner.start()
    await owner.close()
    owner.start()
    try:
        assert owner.running and await owner.run(lambda: 42) == 42
    finally:
        await owner.close()


PROVIDERS: dict[str, tuple[Any, str, Any]] = {
    # name: (factory, owner named in the error, a call that needs the owner thread)
    "sentence_transformers": (SentenceTransformerProvider, "sentence-transformers embedder",
                              lambda p: p.embed_texts(["x"])),
    "vllm_embeddings": (VLLMEmbeddingProvider, "vLLM embedder", lambda p: p.embed_texts(["x"])),
    "cross_encoder": (CrossEncoderReranker, "cross-encoder reranker", lambda p: p._score("q", ["d"])),
    "vllm_reranker": (VLLMReranker, "vLLM reranker", lambda p: p._score("q", ["d"])),
    "ladybug": (LadybugGraphClient, "Ladybug client", lambda p: p.execute("RETURN 1")),
    "memgraph": (MemgraphGraphClient, "Memgraph client", lambda p: p.execute("RETURN 1")),
}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_each_owner_thread_provider_refuses_a_call_before_initialize(name: str) -> None:
    factory, owner, call = PROVIDERS[name]
    with pytest.raises(ProviderCallError, match=f"^{owner} is not initialized$"):
        await call(factory())
