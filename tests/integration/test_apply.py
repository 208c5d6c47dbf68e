"""``apply``: the running registry follows a providers.yaml (CLI, admin HTTP, Python; real Ray).

The files are the live export (every provider of the session, unchanged) plus
providers this module owns (``apply-*``), so ``--prune`` deletes only those,
and a plan that would touch a shared provider fails the test before anything
is applied.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re

import httpx
import pytest
import yaml

from providers.registry.interpolation import interpolate_tree
from serve_app import ProviderType, provider_registry
from tests.integration.conftest import ADMIN_TOKEN, PG_PASSWORD, SAMPLE
from tests.integration.test_cli import cli
from tests.integration.test_rollout import Load

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OURS = ("apply-fb", "apply-swapped", "apply-gone", "apply-new")  # deletion order: apply-fb falls back to apply-swapped


def hash_spec(dimension: int, **extra) -> dict:
    return {"class": f"{SAMPLE}.HashEmbedder", "config": {"dimension": dimension},
            "deployment": {"num_cpus": 0.1}, **extra}


def live_export(registry, monkeypatch) -> dict:
    """The live table as providers.yaml; its one secret placeholder is set here, as an operator would."""
    r = httpx.get(registry["http"] + "/v1/admin/export", headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    # Another test leaving a provider with a secret behind would make this file change it: say so.
    assert body["set_these_variables"] == ["VECTOR_STORES_MEMORIES_PASSWORD"], body["set_these_variables"]
    monkeypatch.setenv("VECTOR_STORES_MEMORIES_PASSWORD", PG_PASSWORD)
    return body["config"]


def with_ours(doc: dict, **specs: dict) -> dict:
    out = copy.deepcopy(doc)
    out["embeddings"]["providers"].update(specs)
    return out


def write(path, doc: dict):
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def plan_rows(stdout: str) -> list[list[str]]:
    """The table's rows up to the first blank line, as [action, provider]."""
    lines = stdout.split("\n\n")[0].splitlines()
    assert lines[0].split() == ["ACTION", "PROVIDER", "CHANGE"], stdout
    return [line.split()[:2] for line in lines[1:] if not re.match(r"\d+ unchanged: ", line)]


async def listing() -> dict:
    return (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]


async def test_apply_adds_swaps_refallbacks_and_prunes_under_load(registry, tmp_path, monkeypatch):
    base = live_export(registry, monkeypatch)
    shared = {f"{t}/{n}" for t, group in base.items() if t != "registry" for n in group["providers"]}
    first = write(tmp_path / "first.yaml", with_ours(base, **{"apply-swapped": hash_spec(16),
                                                              "apply-fb": hash_spec(8),
                                                              "apply-gone": hash_spec(8)}))
    try:
        planned = await provider_registry.apply_config(str(first), dry_run=True)
        assert [(s["action"], s["provider"]) for s in planned["steps"]] == [
            ("register", "embeddings/apply-fb"), ("register", "embeddings/apply-gone"),
            ("register", "embeddings/apply-swapped")]
        assert set(planned["unchanged"]) == shared and planned["done"] == []
        assert "apply-fb" not in await listing()  # a dry run registers nothing
        result = await provider_registry.apply_config(str(first))
        assert [d["action"] for d in result["done"]] == ["register"] * 3

        second = write(tmp_path / "second.yaml", with_ours(base, **{
            "apply-swapped": hash_spec(24),  # changed: a new version
            "apply-fb": hash_spec(8, fallback=["apply-swapped"]),  # only its fallback list
            "apply-new": hash_spec(8)}))  # and apply-gone is not named: --prune deletes it
        dry = await asyncio.to_thread(cli, registry, "apply", str(second), "--dry-run", "--prune")
        assert dry.returncode == 0, dry.stderr
        assert plan_rows(dry.stdout) == [["register", "embeddings/apply-new"], ["swap", "embeddings/apply-swapped"],
                                         ["fallback", "embeddings/apply-fb"], ["delete", "embeddings/apply-gone"]]
        assert "config.dimension: 16 -> 24" in dry.stdout and "fallback: [] -> [apply-swapped]" in dry.stdout
        assert "dry run: nothing changed" in dry.stdout and f"{len(shared)} unchanged: " in dry.stdout
        now = await listing()
        assert "apply-new" not in now and "apply-gone" in now and now["apply-swapped"]["version"] == 1

        async with Load(registry["http"] + "/v1/embeddings", "apply-swapped") as load:
            applied = await asyncio.to_thread(cli, registry, "apply", str(second), "--prune")
            assert applied.returncode == 0, applied.stderr
            await load.answers(20, until=lambda: 24 in load.labels)  # the new version serves
        assert load.failed == [], load.failed[:5]
        assert load.labels[0] == 16 and load.labels[-1] == 24
        assert plan_rows(applied.stdout.split("applied:\n")[1]) == plan_rows(dry.stdout)
        now = await listing()
        assert "apply-gone" not in now and now["apply-new"]["version"] == 1
        assert now["apply-swapped"]["version"] == 2 and now["apply-swapped"]["config"] == {"dimension": 24}
        assert now["apply-fb"]["version"] == 1 and now["apply-fb"]["fallback"] == ["apply-swapped"]

        again = await asyncio.to_thread(cli, registry, "apply", str(second), "--prune")
        assert again.returncode == 0 and "no changes to apply" in again.stdout, again.stdout + again.stderr
        assert (await provider_registry.apply_config(str(second), prune=True))["done"] == []
        await _a_broken_file_changes_nothing(registry, tmp_path, second)
    finally:
        for name in OURS:
            if name in await listing():
                await provider_registry.delete_provider(ProviderType.EMBEDDING, name)


async def _a_broken_file_changes_nothing(registry, tmp_path, good) -> None:
    doc = yaml.safe_load(good.read_text())
    doc["embeddings"]["providers"]["apply-swapped"]["config"]["dimension"] = 32  # a change that must not happen
    doc["embeddings"]["providers"]["apply-new"]["deployment"]["num_cpus"] = -1
    before = await listing()
    r = await asyncio.to_thread(cli, registry, "apply", str(write(tmp_path / "broken.yaml", doc)), "--prune")
    assert r.returncode == 1 and "embeddings.providers.apply-new.deployment.num_cpus" in r.stderr, r.stderr
    url = registry["http"] + "/v1/admin/apply"
    yaml_type = {"Content-Type": "application/yaml"}
    async with httpx.AsyncClient(timeout=120, headers=AUTH) as client:
        # the router resolves no ${VAR} from its own environment, even one it has
        r = await client.post(url, content=yaml.safe_dump(doc), headers=yaml_type)
        assert r.status_code == 400 and "VECTOR_STORES_MEMORIES_PASSWORD is not set" in r.text, r.text
        doc = interpolate_tree(doc, os.environ)
        r = await client.post(url, content=yaml.safe_dump(doc), headers=yaml_type)
        assert r.status_code == 400 and "embeddings.providers.apply-new.deployment.num_cpus" in r.text, r.text
        doc["embeddings"]["providers"]["apply-new"]["deployment"]["num_cpus"] = 0.1
        doc["embeddings"]["providers"]["apply-new"]["fallback"] = ["nope"]
        r = await client.post(url, json=doc)
        assert r.status_code == 400 and "embeddings.providers.apply-new.fallback" in r.text, r.text
    assert await listing() == before


async def test_registry_section_changes_are_planned_as_restarts_and_never_applied(registry, monkeypatch):
    # the posted mapping is taken as is: its ${VAR} resolved here, as the CLI and client do for files
    doc = interpolate_tree(live_export(registry, monkeypatch), os.environ)
    revision = _revision(registry)
    doc["registry"]["max_top_k"] = 77
    url = registry["http"] + "/v1/admin/apply"
    async with httpx.AsyncClient(timeout=120) as client:
        r = await client.post(url, json={"config": doc})
        assert r.status_code == 403, r.text  # behind the admin token like every admin route
        r = await client.post(url, json=doc, params={"dry_run": "false"}, headers=AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [(s["action"], s["provider"]) for s in body["steps"]] == [("restart", "registry.max_top_k")], body
        assert "10000 -> 77 (needs a restart; not applied)" == body["steps"][0]["detail"]
        assert body["done"] == [] and body["dry_run"] is False
        r = await client.post(url, json=doc, params={"dry_run": "maybe"}, headers=AUTH)
        assert r.status_code == 400 and "dry_run" in r.text, r.text
    assert _revision(registry) == revision  # nothing was committed
    again = await provider_registry.apply_config(doc, dry_run=True)  # a dict: taken as is
    assert [s["provider"] for s in again["steps"]] == ["registry.max_top_k"]  # the running settings are unchanged


def _revision(registry) -> int:
    r = httpx.get(registry["http"] + "/v1/admin/export", headers=AUTH, timeout=60)
    return r.json()["revision"]
