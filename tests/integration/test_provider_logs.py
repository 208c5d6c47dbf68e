"""Structured provider logs on Ray: after a reload, the new replica's Serve log
file and the router's name the provider with its type, name and new version,
and no secret of its config appears in any log of the session."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.conftest import SAMPLE

pytestmark = pytest.mark.integration

NAME = "log-probe"
SECRET = "sk-log-probe-" + "5e3f1a9c7b2d"


def _serve_logs() -> Path:
    import ray

    return Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"


def _lines_with(text: str, pattern: str, timeout_s: float = 120.0) -> dict[str, list[str]]:
    """Lines holding ``text`` in the Serve log files named like ``pattern``, by file; waits for one."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = {p.name: [ln for ln in p.read_text(errors="replace").splitlines() if text in ln]
                 for p in _serve_logs().glob(pattern)}
        found = {k: v for k, v in found.items() if v}
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


async def test_a_reloaded_replica_logs_its_type_name_and_new_version(registry):
    from serve_app import ProviderType, provider_registry

    await provider_registry.register_provider(
        ProviderType.EMBEDDING, NAME, f"{SAMPLE}.HashEmbedder",
        config={"dimension": 8, "label": "probe", "api_key": SECRET}, deployment={"num_cpus": 0.1})
    try:
        await provider_registry.reload_provider(ProviderType.EMBEDDING, NAME)
        embedder = await provider_registry.get_provider(ProviderType.EMBEDDING, NAME)
        await embedder.embed_texts(["a line in the access log"])

        # The replica of v2: its own line, and Serve's access line, both stamped.
        replica = _lines_with(f"[embeddings/{NAME} v2]", "replica_*")
        assert replica, "no replica log line names embeddings/log-probe v2"
        lines = [ln for found in replica.values() for ln in found]
        assert any("initialized ready" in ln for ln in lines), lines
        # The router's line about deploying it, from the deployer's module logger.
        router = _lines_with(f"[embeddings/{NAME} v2] deploying as application", "replica_*RegistryRouter*")
        assert router, "the router's log does not name the deployed version"
    finally:
        await provider_registry.delete_provider(ProviderType.EMBEDDING, NAME)

    import ray

    session = Path(ray._private.worker._global_node.get_session_dir_path())
    leaks = [p for p in session.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000
             and SECRET.encode() in p.read_bytes()]
    assert leaks == []
