"""One thread that owns a model or a connection.

Some libraries must be used from one thread only (vLLM's offline engine,
a Ladybug ``Connection``, GQLAlchemy's cached connection), and a model's
forward passes gain nothing from running side by side (they fight over the
same cores). Such a provider runs every blocking call on its `OwnerThread`:
calls run one at a time in the order they came, and the event loop stays
free meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from providers.errors import ProviderCallError, not_initialized

T = TypeVar("T")


class OwnerThread:
    """``start`` it in ``initialize``, ``run`` each blocking call on it, ``close`` it in ``close``.

    ``owner`` names the provider in errors ("Ladybug client is closed");
    ``initializer`` runs first on the thread (e.g. per-thread torch settings).
    A closed one may be started again.
    """

    def __init__(self, owner: str, *, thread_name: str, initializer: Callable[[], None] | None = None) -> None:
        self.owner = owner
        self._thread_name = thread_name
        self._initializer = initializer
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        return self._executor is not None

    def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name,
                                                initializer=self._initializer)
            self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the thread, after the calls queued before it."""
        if self._executor is None:
            raise ProviderCallError(f"{self.owner} is closed") if self._closed else not_initialized(self.owner)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self, last: Callable[[], None] | None = None) -> None:
        """Take no more calls. ``last`` (releasing the model or connection) runs on the
        thread after the calls already queued, and the thread is joined; without it
        the thread ends after its queued calls, not waited for (a forward pass in
        flight may take seconds)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        self._closed = True
        if last is None:
            executor.shutdown(wait=False)
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, last)
        finally:
            executor.shutdown(wait=True)
