"""The cluster files: ray_cluster.yaml against the JSON schema Ray ships for
cluster launcher configs, and the GPU example against our own config schema
and the Serve config it builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GPU_EXAMPLE = ROOT / "config" / "examples" / "gpu_cluster.yaml"
ENV = {"POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p", "POSTGRES_HOST": "db", "POSTGRES_DB": "m",
       "MEMGRAPH_HOST": "mg", "REDIS_URL": "redis://cache:6379/0"}


def test_ray_cluster_yaml_is_a_valid_cluster_launcher_config():
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"].get("GPU", 0) == 0
    assert sorted(t["resources"].get("GPU", 0) for t in types.values()) == [0, 1, 8]
    starts = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    assert starts.count("RAY_AUTH_MODE=token") == 2 and "--dashboard-host=127.0.0.1" in starts
    assert any("[gpu" in c for c in config["setup_commands"])
    assert "RAY_AUTH_TOKEN" not in yaml.safe_dump(config).replace("$RAY_AUTH_TOKEN", "")  # no token in the file


def test_gpu_example_is_a_valid_registry_config():
    from providers.registry.config import load_config
    from providers.registry.loading import load_provider_class

    config = load_config(GPU_EXAMPLE, env=ENV)
    kinds = {(t.value, n) for t, n, _ in config.specs()}
    assert ("embeddings", "e5-large") in kinds and ("graph_engines", "memgraph") in kinds
    e5 = config.embeddings.providers["e5-large"]
    assert e5.config["device"] == "cuda" and e5.deployment.num_gpus == 0.25 and e5.deployment.autoscaling_config
    assert config.vector_stores.providers["memories"].config["connection_string"] == "postgresql://u:p@db:5432/m"
    for ptype, _, spec in config.specs():  # every class imports (vLLM and gqlalchemy lazily) and fits its interface
        load_provider_class(spec.class_path, ptype, config.registry.allowed_prefixes())


def test_gpu_example_builds_a_serve_config_without_secrets(monkeypatch):
    from ray.serve.schema import ServeDeploySchema

    from serve_app.serve_config import build_serve_config

    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    doc = build_serve_config(GPU_EXAMPLE)
    ServeDeploySchema.model_validate(doc) if hasattr(ServeDeploySchema, "model_validate") else ServeDeploySchema.parse_obj(doc)
    text = yaml.safe_dump(doc)
    assert "${POSTGRES_PASSWORD}" in text and "postgresql://u:p@" not in text
    assert len(doc["applications"]) == 11 and doc["applications"][-1]["name"] == "registry"


@pytest.mark.parametrize("missing", ["POSTGRES_PASSWORD", "REDIS_URL"])
def test_gpu_example_names_an_unset_variable(missing):
    from providers.errors import ConfigError
    from providers.registry.config import load_config

    with pytest.raises(ConfigError, match=missing):
        load_config(GPU_EXAMPLE, env={k: v for k, v in ENV.items() if k != missing})


def test_build_refuses_a_class_outside_the_allowlist(tmp_path):
    """`provider-registry build` fails at the key, not later in every replica of `serve deploy`."""
    from providers.errors import ConfigError
    from serve_app.serve_config import build_serve_config

    path = tmp_path / "providers.yaml"
    path.write_text("embeddings:\n  providers:\n    evil:\n      class: os.system\n")
    with pytest.raises(ConfigError, match=r"embeddings\.providers\.evil\.class: .*'os' is not in the allowed"):
        build_serve_config(path)
