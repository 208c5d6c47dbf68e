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
