"""Benchmarks that change what they measure refuse a running registry before touching it.

hot_swap swaps the provider, failover kills a replica, startup starts a
registry: with ``--registry-url`` each exits 2 at once, naming ``--config``
(its own copy) as the way to run it on a cluster. The URL points nowhere: a
benchmark that tried to reach it would fail differently.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", ["hot_swap", "failover", "startup"])
def test_refuses_registry_url(script):
    run = subprocess.run([sys.executable, f"benchmarks/{script}.py", "--registry-url", "http://127.0.0.1:9",
                          "--provider", "embeddings/minilm"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"{script}: --registry-url measures a registry read-only" in run.stderr
    assert "--config" in run.stderr and "Traceback" not in run.stderr


def test_config_subset_takes_what_the_benchmark_needs_and_a_table_of_its_own(monkeypatch):
    """memory_pipeline --config: the search tool, what it depends on, memory.store beside
    it, and a vector store writing to ``bench_<tag>`` instead of the file's table."""
    sys.path.insert(0, str(ROOT))
    from benchmarks._target import config_subset, private_tables

    monkeypatch.delenv("PGVECTOR_DATA_DIR", raising=False)
    config, digest = config_subset(str(ROOT / "config" / "providers.yaml"), "tools", "memory.search",
                                   http_port=18123, also=(("tools", "memory.store"),))
    assert sorted(config.tools.providers) == ["memory.search", "memory.store"]
    assert sorted(config.vector_stores.providers) == ["memories"]
    assert "minilm" in config.embeddings.providers and "similarity" in config.rerankers.providers
    assert config.registry.http_port == 18123 and digest.startswith("sha256:")
    assert config.vector_stores.providers["memories"].config["table_name"] == "memories"
    private_tables("abc123")(config)
    assert config.vector_stores.providers["memories"].config["table_name"] == "bench_abc123"
