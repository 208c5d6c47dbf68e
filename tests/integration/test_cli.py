"""The operator's CLI against the running registry (a real subprocess, real HTTP)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.integration.conftest import ADMIN_TOKEN, ADMIN_TOKEN_ENV, PG_PASSWORD, ROOT, SAMPLE

pytestmark = pytest.mark.integration


def cli(registry, *args: str, token: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ADMIN_TOKEN_ENV}
    if token:
        env[ADMIN_TOKEN_ENV] = ADMIN_TOKEN
    cmd = [sys.executable, "-m", "serve_app", *args]
    if args[0] not in ("check", "serve", "schema", "build"):
        cmd += ["--url", registry["http"], "--token-env", ADMIN_TOKEN_ENV]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_cli_operations(registry):
    r = cli(registry, "register", "embeddings", "cli-made", "--class", f"{SAMPLE}.HashEmbedder",
            "--config", '{"dimension": 8}', "--spec", '{"deployment": {"num_cpus": 0.1}}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["registered"] == "embeddings/cli-made"
    r = cli(registry, "swap", "embeddings", "cli-made", "--config", '{"dimension": 10}')
    assert r.returncode == 0 and json.loads(r.stdout)["version"] == 2, r.stderr
    assert cli(registry, "rollback", "embeddings", "cli-made").returncode == 0
    assert cli(registry, "fallback", "embeddings", "cli-made", "hash").returncode == 0
    listed = json.loads(cli(registry, "list", "--json", token=False).stdout)["embeddings"]["cli-made"]
    assert listed["version"] == 3 and listed["fallback"] == ["hash"] and listed["config"] == {"dimension": 8}
    table = cli(registry, "list", token=False).stdout.splitlines()
    assert table[0].split()[:5] == ["TYPE", "NAME", "VERSION", "HEALTH", "BREAKER"]
    row = next(line.split() for line in table if line.split()[:2] == ["embeddings", "cli-made"])
    assert row[2] == "3" and row[4] == "closed" and row[6] == "hash", row
    health = json.loads(cli(registry, "health", "embeddings", "cli-made", "--json", token=False).stdout)
    assert health["status"] == "healthy"
    health_table = cli(registry, "health", "embeddings", "cli-made", token=False).stdout
    assert re.search(r"^status +healthy$", health_table, re.M), health_table
    stats_table = cli(registry, "stats", token=False).stdout
    assert stats_table.splitlines()[0].split()[:4] == ["PROVIDER", "CALLS", "OK", "FAILED"]
    assert "embeddings/cli-made" in stats_table and "embedding cache: hit ratio" in stats_table
    assert cli(registry, "fallback", "embeddings", "cli-made").returncode == 0
    assert cli(registry, "delete", "embeddings", "cli-made").returncode == 0
    stats = json.loads(cli(registry, "stats", "--json", token=False).stdout)
    assert "embeddings/cli-made" not in stats["usage_stats"]


def test_cli_errors_are_clear(registry):
    r = cli(registry, "reload", "embeddings", "minilm", token=False)
    assert r.returncode == 2 and ADMIN_TOKEN_ENV in r.stderr
    r = cli(registry, "delete", "embeddings", "nope")
    assert r.returncode == 1 and "nope" in r.stderr
    r = cli(registry, "register", "embeddings", "x", "--class", "a.B", "--config", "{bad")
    assert r.returncode == 1 and "--config is not valid JSON" in r.stderr
    r = cli(registry, "check", "--config", "config/providers.yaml")
    assert r.returncode == 0 and "valid" in r.stdout


def test_cli_export_status_and_schema(registry, tmp_path):
    secret = "pw-" + "5c1d0e7a9b"
    r = cli(registry, "register", "embeddings", "remote-one", "--class", f"{SAMPLE}.HashEmbedder",
            "--config", json.dumps({"dimension": 8, "api_key": secret}), "--spec", '{"deployment": {"num_cpus": 0.1}}')
    assert r.returncode == 0, r.stderr
    out = tmp_path / "exported.yaml"
    r = cli(registry, "export", "-o", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert secret not in text and "${EMBEDDINGS_REMOTE_ONE_API_KEY}" in text
    assert PG_PASSWORD not in text and "${VECTOR_STORES_MEMORIES_PASSWORD}" in text  # the session's own secret
    import re

    import yaml

    from providers.registry.config import parse_config

    exported = parse_config(yaml.safe_load(text), env={v: "x" for v in re.findall(r"\$\{(\w+)\}", text)})
    assert {"minilm", "remote-one"} <= set(exported.embeddings.providers)  # run-time registrations kept
    assert exported.vector_stores.providers["memories"].embedder == "minilm"
    assert cli(registry, "export", token=False).returncode == 2
    assert cli(registry, "delete", "embeddings", "remote-one").returncode == 0

    r = cli(registry, "status", token=False)
    assert r.returncode == 0 and "embeddings/minilm" in r.stdout and "embedding cache: hit ratio" in r.stdout
    r = cli(registry, "schema", "-o", str(tmp_path / "schema.json"))
    schema = json.loads((tmp_path / "schema.json").read_text())
    assert "registry" in schema["properties"] and "vector_stores" in schema["properties"]


def test_cli_ingest_loads_in_batches_and_stops_at_a_refused_batch(registry, tmp_path):
    """Bulk load over HTTP: stored documents are searchable; a refused batch names its lines."""
    lines = [json.dumps({"id": f"ingest-{i}", "content": f"ingested note number {i}", "metadata": {"n": i}})
             for i in range(7)]
    path = tmp_path / "notes.jsonl"
    path.write_text("\n".join(lines) + "\n")
    ids = [f"ingest-{i}" for i in range(8)]
    try:
        r = cli(registry, "ingest", "memories", str(path), "--batch-size", "3", token=False)
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout.splitlines()[-1])
        assert summary["stored"] == 7 and summary["first_line"] == 1
        assert "ingest memories" in r.stderr  # the progress bar
        import httpx

        got = httpx.get(registry["http"] + "/v1/vector_stores/memories/documents/ingest-6", timeout=30).json()
        assert got["content"] == "ingested note number 6" and got["metadata"] == {"n": 6}

        bad = tmp_path / "bad.jsonl"
        bad.write_text(lines[0] + "\n" + json.dumps({"id": "ingest-7", "content": "x" * 6000}) + "\n")
        r = cli(registry, "ingest", "memories", str(bad), "--batch-size", "1", token=False)
        assert r.returncode == 1 and "lines 2-2 refused (400)" in r.stderr and "--start-line 2" in r.stderr
        assert "1 documents before them are stored" in r.stderr
    finally:
        import httpx

        for doc_id in ids:
            httpx.delete(registry["http"] + f"/v1/vector_stores/memories/documents/{doc_id}", timeout=30)
