"""benchmarks/sweep.py over a 2x2 grid on a two-node cluster, and nothing of it left afterwards.

The cluster is a head plus a node (`ray start`, a temp dir of its own, see
conftest.py); the sweep joins it by address as a cluster user's would, deploys
its registry from a providers.yaml under an app name of its own, swaps the
provider through each point (replicas 1,2 x max_batch_size 4,16), loads it
open-loop from two Ray actors spread over the nodes, and removes what it
deployed. The provider is the test suite's HashEmbedder (starts at once): the
point is the sweep's machinery, not a model's speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.cluster.conftest import ROOT, local_cluster

LIST_APPS = textwrap.dedent("""
    import json, sys, ray
    from ray import serve
    ray.init(address=sys.argv[1], log_to_driver=False)
    print(json.dumps(sorted(serve.status().applications)))
""")


def test_sweep_2x2_on_a_two_node_cluster(tmp_path):
    config = tmp_path / "providers.yaml"
    config.write_text(textwrap.dedent("""
        registry:
          allowed_module_prefixes: [tests.integration.sample_providers]
          deploy_timeout_s: 120
        embeddings:
          providers:
            hash:
              class: tests.integration.sample_providers.HashEmbedder
              config: {label: sweep}
              deployment: {num_cpus: 0.1, max_ongoing_requests: 256}
    """))
    out = tmp_path / "results"
    with local_cluster([["--num-cpus=2", "--num-gpus=0"]]) as cluster:
        cmd = [sys.executable, "benchmarks/sweep.py", "--quick", "--address", cluster["address"],
               "--config", str(config), "--provider", "embeddings/hash", "--replicas", "1,2",
               "--max-batch-size", "4,16", "--rate", "10,20", "--duration", "1", "--clients", "2",
               "--client-cpus", "0.1", "--slo-p99-ms", "2000", "--out", str(out)]
        run = subprocess.run(cmd, cwd=ROOT, env=cluster["env"], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"sweep failed:\n{run.stdout[-4000:]}\n{run.stderr[-6000:]}"
        result = json.loads(run.stdout.strip().splitlines()[-1])
        apps = subprocess.run([sys.executable, "-c", LIST_APPS, cluster["address"]], cwd=ROOT, env=cluster["env"],
                              capture_output=True, text=True, timeout=300)
        assert apps.returncode == 0, apps.stderr[-4000:]
        left = json.loads(apps.stdout.strip().splitlines()[-1])

    assert result["rates"] == [10.0, 20.0] and result["target_rps"] == 20.0
    points = [r["point"] for r in result["points"]]
    assert sorted((p["replicas"], p["max_batch_size"]) for p in points) == [(1, 4), (1, 16), (2, 4), (2, 16)]
    for row in result["points"]:
        assert not row["rolled_back"], row
        assert [m["offered_rps"] for m in row["measurements"]] == [10.0, 20.0], row
        for m in row["measurements"]:
            assert m["clients"] == 2 and m["ok"] > 0, m
            assert {"p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "errors_by_kind", "generator_saturated"} <= set(m)
    # Each swap made a new version of the one provider: v2..v5 after the first deploy.
    assert [r["version"] for r in result["points"]] == [2, 3, 4, 5]
    assert result["frontier"] and all(f["p99_ms"] is not None for f in result["frontier"])
    rec = result["recommendation"]
    print("sweep recommendation:", rec)  # shown with -rP
    # The cheapest point meets a 2 s p99 at 20 req/s of a hash embedder: one replica.
    assert rec is not None and rec["point"]["replicas"] == 1, result["points"]
    env = result["environment"]
    assert len(env["nodes"]) == 2 and env["cluster"]["cpus"] == 4.0 and env["config_hash"].startswith("sha256:")
    assert (out / "sweep.json").exists() and (out / "sweep.png").stat().st_size > 0
    # Everything it deployed is gone: its registry and every provider version.
    assert result["left_deployed"] == []
    assert not [a for a in left if a.startswith("sweep")], left
