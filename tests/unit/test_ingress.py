"""serve_app/ingress.py: which ingress a local Ray gets, and HAProxy's files and ports.

No Ray here: what the module puts in the environment Ray starts with. That
Ray reads it (HAProxy runs, its files live where it says, nothing outlives
`make serve`) is tests/newcomer/test_make_serve.py's, on a real `make serve`.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from providers.errors import ConfigError
from providers.registry.config import RegistrySettings
from serve_app import ingress

ROOT = Path(__file__).resolve().parents[2]


def test_the_environment_overrides_the_config_and_haproxy_is_the_default(monkeypatch):
    monkeypatch.delenv(ingress.INGRESS_ENV, raising=False)
    assert RegistrySettings().ingress == ingress.DEFAULT == "haproxy"
    assert ingress.chosen() == "haproxy" and ingress.chosen("proxy") == "proxy"
    monkeypatch.setenv(ingress.INGRESS_ENV, " Proxy ")
    assert ingress.chosen("haproxy") == "proxy"


def test_an_unknown_ingress_fails_naming_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv(ingress.INGRESS_ENV, "nginx")
    with pytest.raises(ConfigError, match=r"PROVIDER_REGISTRY_INGRESS.*'nginx': expected one of haproxy, proxy"):
        ingress.chosen()


def test_haproxy_files_live_in_a_private_run_directory_and_its_ports_are_free(tmp_path):
    env = ingress.ray_env("haproxy")
    run_dir = Path(env["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent
    try:
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700  # Ray makes the admin socket mode 666
        for key in ("RAY_SERVE_HAPROXY_SOCKET_PATH", "RAY_SERVE_HAPROXY_SERVER_STATE_FILE",
                    "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH", "RAY_SERVE_HAPROXY_SERVER_STATE_BASE"):
            assert Path(env[key]) == run_dir or Path(env[key]).parent == run_dir, key
        # HAProxy's 97-byte socket limit, with Ray's 56-character node id directory in between
        assert len(f"{run_dir}/{'n' * 56}/metrics.sock") <= 97
        assert env["RAY_SERVE_HAPROXY_STATS_PORT"] != env["RAY_SERVE_HAPROXY_METRICS_PORT"]
        assert {"8404", "9101"}.isdisjoint({env["RAY_SERVE_HAPROXY_STATS_PORT"], env["RAY_SERVE_HAPROXY_METRICS_PORT"]})
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
        assert env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "2"
        assert int(env["RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH"]) >= 64 * 2**20
    finally:
        ingress._remove_after_ray(run_dir)
    assert ingress.ray_env("proxy") == {}


def test_a_run_directory_too_long_for_haproxys_sockets_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="97-byte limit"):
        ingress.ray_env("haproxy", tmp_path / ("x" * 40))


def test_the_switches_are_in_the_environment_only_while_ray_starts(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_SERVE_ENABLE_HA_PROXY", raising=False)
    monkeypatch.setenv("RAY_SERVE_HAPROXY_STATS_PORT", "18404")  # set by the operator: wins
    short = Path(tempfile.mkdtemp(prefix="ri", dir="/tmp"))  # pytest's tmp_path is too long for HAProxy
    with ingress.for_ray_start("haproxy", short) as env:
        assert os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and env["RAY_SERVE_HAPROXY_STATS_PORT"] == "18404"
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in os.environ  # this process keeps Serve's defaults
    assert os.environ["RAY_SERVE_HAPROXY_STATS_PORT"] == "18404"
    assert "18404" in ingress.describe("haproxy") and "Python proxy" in ingress.describe("proxy")
    short.rmdir()


def test_ray_env_prints_what_every_nodes_ray_start_needs():
    out = subprocess.run([sys.executable, "-m", "serve_app", "ray-env"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, ingress.INGRESS_ENV: "haproxy"}, timeout=120)
    assert out.returncode == 0, out.stderr
    # As the shell reads them: values with spaces (HAProxy's retry-on) come quoted.
    lines = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in out.stdout.splitlines())
    assert lines["RAY_SERVE_HAPROXY_RETRY_ON"] == ingress.RETRY_ON
    assert lines == ingress.cluster_env("haproxy")
    assert not any("HAPROXY_CONFIG_FILE_LOC" in k for k in lines)  # a node's own paths stay Ray's
    proxy = subprocess.run([sys.executable, "-m", "serve_app", "ray-env", "--ingress", "proxy"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert "export RAY_SERVE_ENABLE_HA_PROXY=0" in proxy.stdout


def test_haproxy_ports_come_from_outside_the_ephemeral_range():
    env = ingress.ray_env("haproxy")  # its private run dir goes at exit
    low, high = ingress.HAPROXY_PORT_RANGE
    ports = [int(env[k]) for k in ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT",
                                   "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT")]
    assert all(low <= p < high for p in ports) and len(set(ports)) == 4, ports
    lo_ephemeral = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    assert high <= lo_ephemeral  # the kernel never hands these out to a port-0 bind or a connection


def test_free_port_in_skips_a_taken_port():
    import socket

    from providers.net import free_port_in

    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        taken = held.getsockname()[1]
        with pytest.raises(OSError, match=f"no free port in {taken}-{taken}"):
            free_port_in(taken, taken + 1)
