"""`provider-registry build` -> `serve deploy` on a real Ray cluster started with `ray start --head`.

Runs in its own pytest process (the Makefile's second step), apart from the
session Ray of tests/integration: it starts a head node in a temporary
directory, deploys the generated file, calls the HTTP API, checks that
`serve status` shows every application RUNNING, and stops exactly the
processes it started (matched by that directory), not other Ray instances.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

from providers.net import free_port
from serve_app import ingress
from tests.processes import stop_processes_under

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SAMPLE = "tests.integration.sample_providers"


@pytest.fixture
def cluster():
    """A Ray head node of this test's own; yields its dashboard address and environment."""
    work = Path(tempfile.mkdtemp(prefix="rd", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    # Token authentication on, as ray_cluster.yaml sets it: every `ray`/`serve`
    # command below carries the same token through its environment.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEPLOY_TEST_LABEL": "from-the-cluster-env",
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           # the ingress ray_cluster.yaml's `provider-registry ray-env` sets, HAProxy's files in the test's dir
           **ingress.ray_env(ingress.chosen(), work / "h")}
    dashboard = free_port()
    subprocess.run([str(BIN / "ray"), "start", "--head", f"--port={free_port()}", f"--temp-dir={work}",
                    "--include-dashboard=true", f"--dashboard-port={dashboard}", "--num-cpus=4",
                    "--disable-usage-stats"], check=True, env=env, cwd=ROOT, capture_output=True, timeout=180)
    try:
        yield {"dashboard": f"http://127.0.0.1:{dashboard}", "env": env, "work": work}
    finally:
        assert not stop_processes_under(str(work)), "processes of the test cluster survived"
        shutil.rmtree(work, ignore_errors=True)


def test_build_then_serve_deploy(cluster, tmp_path):
    http_port = free_port()
    providers = {
        "registry": {"http_port": http_port, "allowed_module_prefixes": [SAMPLE]},
        "embeddings": {"providers": {"h": {
            "class": f"{SAMPLE}.HashEmbedder",
            # resolved on the cluster, from the environment `ray start` had
            "config": {"label": "${DEPLOY_TEST_LABEL}", "dimension": 8},
            "deployment": {"num_cpus": 0.1}}}},
    }
    src = tmp_path / "providers.yaml"
    src.write_text(yaml.safe_dump(providers), encoding="utf-8")
    out = tmp_path / "serve_config.yaml"
    env = cluster["env"]
    r = subprocess.run([sys.executable, "-m", "serve_app", "build", str(src), "-o", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "${DEPLOY_TEST_LABEL}" in out.read_text()  # the file holds the placeholder, not the value

    r = subprocess.run([str(BIN / "serve"), "deploy", str(out), "-a", cluster["dashboard"]],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr

    deadline = time.monotonic() + 240
    status = ""
    while time.monotonic() < deadline:
        r = subprocess.run([str(BIN / "serve"), "status", "-a", cluster["dashboard"]],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        status = r.stdout
        apps = (yaml.safe_load(status) or {}).get("applications") or {}
        if len(apps) == 2 and all(a.get("status") == "RUNNING" for a in apps.values()):
            break
        time.sleep(2)
    apps = (yaml.safe_load(status) or {}).get("applications") or {}
    assert set(apps) == {"registry", "registry--embeddings--h--v1"}, status
    assert all(a["status"] == "RUNNING" for a in apps.values()), status

    base = f"http://127.0.0.1:{http_port}"
    r = httpx.post(base + "/v1/embeddings", json={"model": "h", "input": ["hello"]}, timeout=60)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"][0]["embedding"]) == 8
    health = httpx.get(base + "/v1/providers/embeddings/h/health", timeout=60).json()
    assert health.get("label") == "from-the-cluster-env", health
