"""A benchmark pointed at a running registry measures it and touches nothing.

`benchmarks/embeddings_throughput.py --address <this session's Ray> --registry-url
<its URL> --rate 10,20` runs as a cluster user would run it against `make serve`:
open-loop load over HTTP, the place it ran described from Ray. The session's
applications, provider versions and Ray must be exactly as before.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.integration.conftest import ROOT


async def test_registry_url_measures_without_deploying_or_stopping_anything(registry, tmp_path):
    import ray
    from ray import serve

    from serve_app import ProviderRegistry

    client = ProviderRegistry(registry["app_name"])
    apps_before = sorted(serve.status().applications)
    versions_before = {n: p["version"] for n, p in (await client.list_providers("embeddings"))["embeddings"].items()}
    cmd = [sys.executable, "benchmarks/embeddings_throughput.py", "--address", ray.get_runtime_context().gcs_address,
           "--registry-url", registry["http"], "--app-name", registry["app_name"], "--provider", "embeddings/minilm",
           "--rate", "10,20", "--duration", "2", "--out", str(tmp_path)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    result = json.loads(run.stdout.strip().splitlines()[-1])

    assert result["mode"] == "running" and result["left_deployed"] == []
    assert [p["offered_rps"] for p in result["points"]] == [10.0, 20.0]
    for p in result["points"]:
        assert p["mode"] == "open" and p["ok"] > 0 and p["errors"] == 0, p
        assert p["p50_ms"] <= p["p90_ms"] <= p["p99_ms"] <= p["p99_9_ms"], p
    assert result["environment"]["ray_address"] and len(result["environment"]["nodes"]) >= 1
    assert (tmp_path / "embeddings_throughput.json").exists()
    # Nothing deployed, swapped, deleted or stopped.
    assert sorted(serve.status().applications) == apps_before
    versions_after = {n: p["version"] for n, p in (await client.list_providers("embeddings"))["embeddings"].items()}
    assert versions_after == versions_before
    embedder = await client.get_provider("embeddings", "minilm")
    assert len(await embedder.embed_query("still served")) == 384


def _run(args: list[str], timeout: int = 300) -> dict:
    run = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])


async def test_read_only_benchmarks_write_nothing_to_a_running_registry(registry, tmp_path):
    """vector_search and memory_pipeline with --registry-url: searches and reranks over HTTP,
    no document stored or deleted, no application or version changed."""
    import ray
    from ray import serve

    from serve_app import ProviderRegistry

    client = ProviderRegistry(registry["app_name"])
    journal = await client.get_provider("vector_stores", "journal")
    count_before = await journal.count_documents()
    apps_before = sorted(serve.status().applications)
    running = ["--address", ray.get_runtime_context().gcs_address, "--registry-url", registry["http"],
               "--app-name", registry["app_name"], "--out", str(tmp_path)]

    vs = _run(["benchmarks/vector_search.py", *running, "--provider", "vector_stores/journal", "--queries", "40"])
    assert vs["mode"] == "running" and vs["left_deployed"] == [] and vs["n"] is None
    (row,) = vs["results"]
    assert row["store"] == "journal" and row["qps_http"] > 0 and row["recall_http"] is None, row

    mp = _run(["benchmarks/memory_pipeline.py", "--quick", *running])
    assert mp["mode"] == "running" and mp["memories"] is None and mp["errors"] == 0, mp
    assert len(mp["passes"]) == 2 and all(p["c1"]["top3_hit_rate"] is None for p in mp["passes"])
    assert mp["rerank_pairs_per_s_served"] > 0

    assert await journal.count_documents() == count_before
    assert sorted(serve.status().applications) == apps_before


async def test_config_mode_deploys_its_own_copy_and_removes_exactly_it(registry, tmp_path):
    """graph_ops --config: the file's Ladybug engine under an app of the run's own, with a
    database file of its own (never the file's path), filled and measured through the
    registry, then removed; the session's applications are exactly as before."""
    import ray
    from ray import serve

    theirs = tmp_path / "theirs.db"
    config = tmp_path / "providers.yaml"
    config.write_text("graph_engines:\n  providers:\n    kg:\n"
                      "      class: providers.graph.ladybug.LadybugGraphEngine\n"
                      f"      config: {{path: {theirs}}}\n      deployment: {{num_cpus: 0.1}}\n")
    apps_before = sorted(serve.status().applications)
    out = _run(["benchmarks/graph_ops.py", "--address", ray.get_runtime_context().gcs_address, "--config",
                str(config), "--provider", "graph_engines/kg", "--quick", "--n", "300", "--out", str(tmp_path)])
    assert out["mode"] == "config" and out["app_name"].startswith("bench-") and out["left_deployed"] == []
    assert out["entities"] == 300 and out["insert_per_s_registry"] > 0
    assert out["hop1_p50_ms_registry"] > 0 and out["hop3_p50_ms_http"] > 0 and out["probes"] == 100
    assert not theirs.exists()  # the run's engine wrote a file of its own
    assert sorted(serve.status().applications) == apps_before
    assert (tmp_path / "graph_ops.json").exists()
