"""HTTP binds to 127.0.0.1 unless providers.yaml says otherwise, on every way of starting:
``make serve`` / the tests (`start_registry`) and ``serve deploy`` (the built Serve
config). The live proxy's socket is checked in tests/integration/test_security.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from providers.registry.config import RegistrySettings, json_schema, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


class _Stop(Exception):
    pass


def test_the_default_is_loopback():
    assert RegistrySettings().http_host == "127.0.0.1"
    assert parse_config({}, env={}).registry.http_host == "127.0.0.1"
    assert json_schema()["$defs"]["RegistrySettings"]["properties"]["http_host"]["default"] == "127.0.0.1"


def test_the_shipped_config_binds_loopback():
    assert load_config(ROOT / "config" / "providers.yaml", env={}).registry.http_host == "127.0.0.1"


def _serve_config(tmp_path: Path, registry: dict) -> dict:
    from serve_app.serve_config import build_serve_config

    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump({"registry": registry}))
    return build_serve_config(path)


@pytest.mark.parametrize(("registry", "host"), [({}, "127.0.0.1"), ({"http_host": "0.0.0.0"}, "0.0.0.0"),
                                                ({"http_host": "10.1.2.3", "http_port": 9000}, "10.1.2.3")])
def test_the_serve_config_carries_the_host(tmp_path, registry, host):
    """`provider-registry build` writes the bind address into Serve's http_options."""
    options = _serve_config(tmp_path, registry)["http_options"]
    assert options["host"] == host and options["port"] == registry.get("http_port", 8000)


@pytest.mark.parametrize(("registry", "host"), [({}, "127.0.0.1"), ({"http_host": "0.0.0.0"}, "0.0.0.0")])
def test_start_registry_starts_serve_on_the_host(monkeypatch, registry, host):
    """`make serve` and the integration suite start Serve's proxy with the configured host."""
    from ray import serve

    from serve_app.main import start_registry

    seen = {}

    def fake_start(**kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(serve, "start", fake_start)
    with pytest.raises(_Stop):
        start_registry(parse_config({"registry": registry}, env={}))
    assert seen["http_options"]["host"] == host


def test_make_serve_starts_ray_without_a_dashboard(monkeypatch):
    """The local Ray that `make serve` starts has no dashboard (nothing listens for it);
    on a cluster, ray_cluster.yaml binds it to localhost (tests/unit/test_cluster_config.py)."""
    import os

    import ray

    from serve_app.main import ensure_ray

    seen = {}
    secret = "adm-" + "unit-bind-0f1e2d"
    monkeypatch.setattr(os, "environ", {**os.environ, "PROVIDER_REGISTRY_ADMIN_TOKEN": secret})
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: seen.update(kwargs))
    ensure_ray()
    assert seen["include_dashboard"] is False
    # Ray logs runtime_env in clear: the token reaches the router by inheritance, never through it.
    assert secret not in repr(seen)
