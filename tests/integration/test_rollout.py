"""Swap, reload and rollback under continuous load: not one request may fail."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from providers.errors import ConfigError, DeploymentError
from serve_app import ProviderType, provider_registry
from tests.integration.conftest import SAMPLE

pytestmark = pytest.mark.integration


WAIT_S = 120  # deadline for a condition; a busy machine makes the test slower, not red


class Load:
    """Continuous HTTP load from the test: counts every answer that is not a 200.

    Phases end on answers, not on time: ``answers(n)`` waits until ``n`` more
    came back, so each phase of a test sees load however slow the machine is.
    """

    def __init__(self, url: str, model: str, workers: int = 4) -> None:
        self.url, self.model, self.workers = url, model, workers
        self.ok = 0
        self.failed: list[str] = []
        self.labels: list[int] = []
        self._stop = asyncio.Event()

    async def _worker(self, client: httpx.AsyncClient, i: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                r = await client.post(self.url, json={"model": self.model, "input": [f"w{i} r{n}"]})
                if r.status_code == 200:
                    self.ok += 1
                    self.labels.append(len(r.json()["data"][0]["embedding"]))
                else:
                    self.failed.append(f"{r.status_code} {r.text[:200]}")
            except httpx.HTTPError as exc:
                self.failed.append(repr(exc))

    async def answers(self, n: int, until=lambda: True) -> None:
        """Wait until ``n`` more answers (of any kind) came back and ``until()`` holds."""
        target = self.ok + len(self.failed) + n
        end = time.monotonic() + WAIT_S
        while self.ok + len(self.failed) < target or not until():
            assert time.monotonic() < end, f"load stalled: {self.ok} ok, failed {self.failed[:3]}"
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> Load:
        self._client = httpx.AsyncClient(timeout=30)
        self._tasks = [asyncio.create_task(self._worker(self._client, i)) for i in range(self.workers)]
        await self.answers(10)
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                await self.answers(10)
        finally:
            self._stop.set()
            await asyncio.gather(*self._tasks)
            await self._client.aclose()


async def _register(name: str, **config) -> None:
    await provider_registry.register_provider(
        ProviderType.EMBEDDING, name, f"{SAMPLE}.HashEmbedder", {"label": name, "dimension": 16, **config},
        deployment={"num_cpus": 0.1})


async def test_swap_reload_and_rollback_under_load_drop_nothing(registry):
    await _register("swappy")
    try:
        async with Load(registry["http"] + "/v1/embeddings", "swappy") as load:
            # a new version with another config: the vectors' length tells which served
            result = await provider_registry.swap_provider(ProviderType.EMBEDDING, "swappy", config={"dimension": 24})
            assert result["version"] == 2
            await load.answers(20, until=lambda: 24 in load.labels)  # the new version serves
            await provider_registry.reload_provider(ProviderType.EMBEDDING, "swappy")
            await load.answers(20)
            back = await provider_registry.rollback_provider(ProviderType.EMBEDDING, "swappy")
            assert back["version"] == 4
            await load.answers(20)
        assert load.failed == [], load.failed[:5]
        assert load.ok >= 80  # every phase above saw answers
        assert load.labels[0] == 16 and 24 in load.labels and load.labels[-1] == 16
        e = await provider_registry.get_provider(ProviderType.EMBEDDING, "swappy")
        assert e.get_dimension() == 16
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "swappy")


async def test_a_version_that_cannot_start_or_is_unhealthy_is_never_flipped_to(registry):
    await _register("steady")
    try:
        async with Load(registry["http"] + "/v1/embeddings", "steady") as load:
            with pytest.raises(DeploymentError, match="cannot reach the model server"):
                await provider_registry.swap_provider(ProviderType.EMBEDDING, "steady",
                                                      class_path=f"{SAMPLE}.BrokenInitEmbedder")
            # Serve's own replica check delegates to the provider, so this one
            # fails while starting; either way it never receives a call.
            with pytest.raises(DeploymentError, match="unhealthy"):
                await provider_registry.swap_provider(ProviderType.EMBEDDING, "steady",
                                                      config={"unhealthy": True},
                                                      deployment={"num_cpus": 0.1, "health_check_period_s": 60})
        assert load.failed == [] and load.ok > 10
        listed = (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]["steady"]
        assert listed["version"] == 1 and listed["class"].endswith("HashEmbedder")
        with pytest.raises(ConfigError, match="no previous version"):
            await provider_registry.rollback_provider(ProviderType.EMBEDDING, "steady")
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "steady")


async def test_a_new_version_whose_calls_fail_is_rolled_back_automatically(registry):
    await _register("autoback")
    try:
        await provider_registry.swap_provider(ProviderType.EMBEDDING, "autoback", config={"fail": True})
        embedder = await provider_registry.get_provider(ProviderType.EMBEDDING, "autoback")
        deadline = time.monotonic() + WAIT_S
        version = 2
        while time.monotonic() < deadline:
            try:
                await embedder.embed_query("x")
            except Exception:
                pass
            listed = (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]["autoback"]
            version = listed["version"]
            if version > 2:
                break
            await asyncio.sleep(0.2)
        assert version == 3, "no automatic rollback"
        assert listed["config"].get("fail") is None  # the spec before the swap
        # Calls reach the restored version once the router retired the failing one:
        # poll, however long that takes on a busy machine.
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                vector = await embedder.embed_query("works again")
                break
            except Exception as exc:
                assert time.monotonic() < deadline, f"still failing after the rollback: {exc!r}"
                await asyncio.sleep(0.2)
        assert vector.shape == (16,)
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "autoback")


async def test_an_orphaned_provider_application_is_swept(registry):
    """An application with this registry's prefix that no route names (a router died mid-swap) goes away."""
    from ray import serve

    from deployments import deployer
    from providers.registry.config import parse_spec
    from providers.registry.table import Route

    orphan = Route(type=ProviderType.EMBEDDING, name="ghost", version=7,
                   spec=parse_spec({"class": f"{SAMPLE}.HashEmbedder", "deployment": {"num_cpus": 0.1}}))
    app = await asyncio.to_thread(deployer.deploy_blocking, orphan, "registry", [SAMPLE], 120, False)
    assert app in serve.status().applications
    deadline = time.monotonic() + WAIT_S  # orphan_grace_s is 4 s in this session
    while time.monotonic() < deadline and app in serve.status().applications:
        await asyncio.sleep(1)
    assert app not in serve.status().applications
    assert "registry--embeddings--minilm--v1" in serve.status().applications  # named ones stay
