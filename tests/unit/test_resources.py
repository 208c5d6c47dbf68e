"""The fit check before a deploy (deployments/resources.py), on given cluster figures:
what Ray would answer for ``ray.nodes()`` and ``ray.available_resources()``.
tests/integration/test_python_api.py checks the same against the session's Ray."""

from __future__ import annotations

import pytest

from deployments.resources import check_all_fit, check_fits
from providers.errors import InsufficientResourcesError
from providers.registry.config import parse_spec
from providers.registry.table import Route
from providers.types import ProviderType

TWO_CPUS = [{"CPU": 2.0, "memory": 8 * 2**30}]


def route(name: str = "my-embedder", version: int = 2, **deployment) -> Route:
    spec = parse_spec({"class": "providers.x.Y", "deployment": deployment}, f"embeddings.providers.{name}")
    return Route(type=ProviderType.EMBEDDING, name=name, spec=spec, version=version)


def test_the_seeds_registration_on_a_busy_two_core_node_names_what_is_asked_and_free():
    new, old = route(), route(version=1)
    with pytest.raises(InsufficientResourcesError) as info:
        check_fits(new, replacing=old, nodes=TWO_CPUS, available={"CPU": 0.6})
    assert str(info.value) == ("embeddings/my-embedder v2 asks 1 CPU per replica (x1, while v1 still runs); "
                               "free: 0.6 CPU of 2; set deployment.num_cpus or add a node")
    assert info.value.http_status == 409


def test_replicas_multiply_what_is_asked():
    check_fits(route(num_cpus=0.5, num_replicas=2), nodes=TWO_CPUS, available={"CPU": 1.0})
    with pytest.raises(InsufficientResourcesError, match=r"asks 0.5 CPU per replica \(x3\); free: 1 CPU of 2"):
        check_fits(route(num_cpus=0.5, num_replicas=3), nodes=TWO_CPUS, available={"CPU": 1.0})
    with pytest.raises(InsufficientResourcesError, match=r"\(x2\)"):
        check_fits(route(num_cpus=1, autoscaling_config={"min_replicas": 2, "max_replicas": 4}),
                   nodes=TWO_CPUS, available={"CPU": 1.5})


def test_what_no_node_has_is_refused_whatever_is_free():
    with pytest.raises(InsufficientResourcesError, match=r"1 GPU \(the largest node has 0\).*no node"):
        check_fits(route(num_gpus=1), nodes=TWO_CPUS, available={"CPU": 2.0, "GPU": 5.0})


def test_custom_resources_and_memory_name_their_settings():
    with pytest.raises(InsufficientResourcesError, match="set deployment.resources.worker_a or add a node"):
        check_fits(route(num_cpus=0, resources={"worker_a": 1}), nodes=[{"CPU": 2, "worker_a": 1}],
                   available={"CPU": 2, "worker_a": 0})
    with pytest.raises(InsufficientResourcesError, match="set deployment.memory"):
        check_fits(route(num_cpus=0, memory=4 * 2**30), nodes=TWO_CPUS, available={"memory": 2 * 2**30})


def test_nothing_asked_fits_anywhere():
    check_fits(route(num_cpus=0), nodes=[], available={})


def test_a_config_that_fits_only_one_provider_at_a_time_is_refused_at_start_naming_the_largest():
    routes = [route("minilm", 1, num_cpus=1), route("store", 1, num_cpus=0.1), route("other", 1, num_cpus=1)]
    check_all_fit(routes, nodes=[{"CPU": 4.0}], available={"CPU": 4.0})
    with pytest.raises(InsufficientResourcesError) as info:
        check_all_fit(routes, nodes=TWO_CPUS, available={"CPU": 2.0})
    assert "ask 2.1 CPU together (embeddings/minilm 1 CPU x1, embeddings/other 1 CPU x1" in str(info.value)
