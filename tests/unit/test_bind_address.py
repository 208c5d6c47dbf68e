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


def test_a_local_instance_counts_each_core_several_times_and_a_joined_cluster_keeps_its_own(monkeypatch):
    import os

    import ray

    from serve_app import main

    seen = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setattr(main, "resolve_address", lambda address: "local")
    monkeypatch.delenv(main.LOCAL_CPUS_ENV, raising=False)
    assert main.ensure_ray() == "local"
    assert seen["num_cpus"] == main.LOCAL_CPUS_PER_CORE * os.cpu_count() and seen["address"] == "local"
    monkeypatch.setenv(main.LOCAL_CPUS_ENV, "3")
    main.ensure_ray()
    assert seen["num_cpus"] == 3.0
    monkeypatch.setattr(main, "resolve_address", lambda address: "10.0.0.5:6379")
    seen.clear()
    assert main.ensure_ray() == "10.0.0.5:6379" and seen.get("num_cpus") is None and seen["address"] == "10.0.0.5:6379"


def test_a_bad_local_cpu_count_names_the_variable(monkeypatch):
    from providers.errors import ConfigError
    from serve_app import main

    monkeypatch.setenv(main.LOCAL_CPUS_ENV, "lots")
    with pytest.raises(ConfigError, match=main.LOCAL_CPUS_ENV):
        main.local_num_cpus()


def test_a_dead_clusters_address_file_is_named_and_a_local_instance_starts(tmp_path, monkeypatch, capsys):
    """A real address file, naming a port where nothing listens (a killed head's)."""
    import socket
    import time

    from serve_app.main import resolve_address

    with socket.socket() as s:  # a port that was free a moment ago: nothing answers there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address_file = tmp_path / "ray_current_cluster"
    address_file.write_text(f"127.0.0.1:{port}")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    start = time.monotonic()
    assert resolve_address(None, temp_dir=str(tmp_path)) == "local"
    assert time.monotonic() - start < 30  # one connect, refused at once; never Ray's minutes of retries
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and str(address_file) in err and "ray stop" in err


def test_a_live_address_is_joined(tmp_path, monkeypatch):
    import socket

    from serve_app.main import resolve_address

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        found = f"127.0.0.1:{listener.getsockname()[1]}"
        (tmp_path / "ray_current_cluster").write_text(found)
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        assert resolve_address(None, temp_dir=str(tmp_path)) == found
        assert resolve_address("local") == "local" and resolve_address("10.1.1.1:6379") == "10.1.1.1:6379"
