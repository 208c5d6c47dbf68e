"""Start a registry: Ray, Serve's HTTP proxy, every provider, then the router.

`start_registry` is what ``make serve``, the tests and the benchmarks call;
it deploys with the same builders a Serve config file names.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from providers.registry.config import RegistryConfig, load_config
from providers.registry.table import RouteTable
from serve_app import ingress as ingress_switch
from serve_app.startup import StartupPhases, stack_memory

logger = logging.getLogger(__name__)


# A local instance's logical CPUs per core. Ray's num_cpus is an admission count, not a
# cap (it pins and throttles nothing): on one machine the OS shares the cores anyway.
# Counting each core once, the default config (minilm 1 CPU, four providers 0.1)
# left 0.6 of 2 free here, and the seed's run-time registration (1 CPU, twice while
# a reload runs beside the old version) could not be placed. On a cluster, started
# with `ray start` or `ray up`, what a provider asks is what it gets.
LOCAL_CPUS_PER_CORE = 4
LOCAL_CPUS_ENV = "PROVIDER_REGISTRY_LOCAL_CPUS"


def local_num_cpus() -> float:
    """Logical CPUs of a Ray instance the registry starts itself (``PROVIDER_REGISTRY_LOCAL_CPUS`` overrides)."""
    raw = os.environ.get(LOCAL_CPUS_ENV, "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value <= 0:
            from providers.errors import ConfigError

            raise ConfigError(f"must be a positive number, got {raw!r}", LOCAL_CPUS_ENV)
        return value
    return float(LOCAL_CPUS_PER_CORE * (os.cpu_count() or 1))


def resolve_address(address: str | None, probe_s: float = 2.0, temp_dir: str | None = None) -> str | None:
    """Where ``ray.init(address)`` would go, with a dead cluster's address ruled out.

    ``None`` (or ``auto``) means: ``RAY_ADDRESS``, else the address a ``ray start``
    left in Ray's temp dir. A head that was killed leaves that file behind, and
    ``ray.init`` then retries the dead address for minutes ("Failed to connect to
    GCS ... Timed out" every 40 s, seen here). Probed with one TCP connect; if
    nothing answers, say so, naming the address and the file, and start locally.
    Returns ``"local"`` to start a new instance, or the address to join.
    """
    if address not in (None, "auto") or os.environ.get("RAY_ADDRESS"):
        return address
    import socket

    from ray._private.utils import get_ray_address_file, read_ray_address

    found = read_ray_address(temp_dir)
    if not found:
        return "local" if address is None else address
    host, _, port = found.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=probe_s):
            return found
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        print(f"warning: the Ray cluster address {found} (from {get_ray_address_file(temp_dir)}) does not answer "
              f"({reason}): a head that stopped left it behind. Starting a local Ray instance instead; "
              "`ray stop` removes the stale file, RAY_ADDRESS names a cluster to join.", file=sys.stderr,
              flush=True)
        return "local"


def ensure_ray(address: str | None = None, num_cpus: float | None = None,
               env_vars: dict[str, str] | None = None, ingress: str | None = None) -> str:
    """Start (or join) Ray with the environment every replica needs; say which.

    A local instance gets ``num_cpus`` logical CPUs (default `local_num_cpus`)
    and the HTTP ingress ``ingress`` (serve_app/ingress.py: the config's
    ``registry.ingress``, overridden by PROVIDER_REGISTRY_INGRESS); a cluster
    being joined keeps its own of both. Returns ``"local"`` or the address joined.

    ``env_vars`` go through runtime_env, which Ray writes to its logs in
    clear (runtime_env_agent.log): never put a secret there. Secrets (the
    admin token, database passwords) reach replicas by being in the
    environment of the process that starts Ray, which Ray's workers inherit.
    """
    import ray

    if ray.is_initialized():
        return "attached"
    # Offline: the model ships in a package; never let a library reach a hub.
    # OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning.
    # Measured on 2 cores, one text on 2 torch threads cost 29 ms of CPU
    # spinning vs 19 ms passive, CPU the proxy and router need.
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_WAIT_POLICY": "PASSIVE", **(env_vars or {})}
    os.environ.update({k: os.environ.get(k, v) for k, v in env.items()})
    target = resolve_address(address)
    local = target == "local"
    if not local:
        ray.init(address=target, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
        return target
    # The raylet and GCS inherit this process's environment: Ray reads RAY_* there.
    os.environ.update({k: os.environ.get(k, v) for k, v in LEAN_LOCAL_RAY_ENV.items()})
    global LOCAL_INGRESS
    LOCAL_INGRESS = ingress_switch.chosen(ingress)
    with ingress_switch.for_ray_start(LOCAL_INGRESS), _lean_local_head():
        ray.init(address=target, num_cpus=num_cpus or local_num_cpus(), include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": env})
    return "local"


# The ingress the local Ray instance this process started runs (None: none started).
LOCAL_INGRESS: str | None = None


# A local instance is one machine's registry, not a cluster: what Ray starts for a
# cluster and nothing here uses costs memory and start-up CPU (measured with
# `make serve` on this machine, RSS of each process):
# - prestarted idle workers, 79 MB each (two here): they carry no runtime_env, and
#   every Serve replica asks one (the registry's env_vars), so none is ever used;
LEAN_LOCAL_RAY_ENV = {"RAY_enable_worker_prestart": "0", "RAY_prestart_worker_first_driver": "0"}
# - the autoscaler's monitor (83 MB): one node that nothing scales;
# - the log monitor (79 MB): it streams workers' output to drivers, and the
#   registry starts Ray with log_to_driver=False (logs stay in Ray's files).
# - the dashboard's API server (116 MB): include_dashboard=False only trims it to
#   its minimal modules (ray/_private/node.py start_head_processes starts it on
#   every head). It serves Ray's dashboard, job submission, the state API and
#   the REST API of the `serve` CLI; the registry's Python API, its HTTP API and
#   the status page at /ui need none of them.
# ray.init has no switch for these three (`ray start` has --no-monitor and
# --include-log-monitor; nothing skips the API server): they are RayParams fields
# that ray.init leaves at their defaults, and a Node method, patched only for the
# duration of ray.init. PROVIDER_REGISTRY_FULL_RAY=1 starts them anyway.
# Summed RSS of make serve's stack with all three gone: 1.85 GiB (2.47 with them
# and torch in the embedder; benchmarks/startup.py, 2026-12-04).
FULL_RAY_ENV = "PROVIDER_REGISTRY_FULL_RAY"


@contextmanager
def _lean_local_head() -> Iterator[None]:
    if os.environ.get(FULL_RAY_ENV, "").strip().lower() in ("1", "true", "yes"):  # as deployments.client reads its flags
        yield
        return
    import ray._private.node
    from ray._private import parameter

    original = parameter.RayParams.__init__

    def lean_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if hasattr(self, "no_monitor") and hasattr(self, "include_log_monitor"):
            self.no_monitor = True
            self.include_log_monitor = False

    parameter.RayParams.__init__ = lean_init
    node_class = ray._private.node.Node
    original_api_server = getattr(node_class, "start_api_server", None)
    if original_api_server is not None:
        node_class.start_api_server = lambda self, **kwargs: None
    try:
        yield
    finally:
        parameter.RayParams.__init__ = original
        if original_api_server is not None:
            node_class.start_api_server = original_api_server


def start_registry(config: RegistryConfig, http: bool = True, phases: StartupPhases | None = None) -> dict[str, Any]:
    """Deploy every provider of ``config`` and the registry router; return addresses.

    Providers start in parallel; the first failure (a resource no node has, a
    model that does not load) is raised with the provider's name. ``phases``
    records how long each step took.
    """
    from ray import serve

    from deployments import deployer
    from deployments.registry_app import build_registry_app
    from deployments.resources import check_all_fit
    from deployments.table_store import TableStore

    phases = phases or StartupPhases()
    s = config.registry
    with phases.phase("Serve controller and HTTP proxy"):
        serve.start(http_options={"host": s.http_host, "port": s.http_port} if http else None)
    # A fresh start is declarative: the config is the table. Forget run-time
    # changes a previous registry of this name left in GCS.
    TableStore(s.app_name).clear()
    table = RouteTable.from_config(config)
    allowed = list(s.allowed_prefixes())
    if s.check_resources:
        check_all_fit(list(table.routes.values()))

    def deploy(route):
        with phases.phase(f"{route.type.value}/{route.name}"):
            deployer.deploy_blocking(route, s.app_name, allowed, s.deploy_timeout_s, False, s.log_encoding)

    with ThreadPoolExecutor(max_workers=max(1, len(table.routes))) as pool:
        for f in [pool.submit(deploy, r) for r in table.routes.values()]:
            f.result()
    with phases.phase("registry router"):
        serve.run(build_registry_app({"config": config.model_dump(mode="json", by_alias=True)}),
                  name=s.app_name, route_prefix=s.route_prefix)
    base = f"http://{s.http_host}:{s.http_port}{s.route_prefix.rstrip('/')}"
    return {"http": base, "app_name": s.app_name}


def check_port_free(host: str, port: int) -> None:
    """Fail before starting Ray when the HTTP port is taken.

    Serve's proxy does not report a port it cannot bind: a second `make serve`
    started a whole Ray instance and printed an address served by the first.
    """
    import socket

    from providers.errors import ConfigError

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); another registry may be running "
                "there: stop it or set registry.http_port", "registry.http_port") from None


def serve_forever(config_path: str) -> int:
    import time

    from ray import serve

    from providers.errors import RegistryError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    phases = StartupPhases(began=_process_began())
    try:
        with phases.phase("Python, imports and config"):
            config = load_config(config_path)
            check_port_free(config.registry.http_host, config.registry.http_port)
        with phases.phase("Ray"):
            where = ensure_ray(ingress=config.registry.ingress)
        # SIGTERM (`kill`, a container or service stop) stops as cleanly as Ctrl-C: Serve,
        # the embedded databases, then the local Ray instance with this process. Set
        # after ray.init, whose own handler exits at once and left Ray's agents running.
        signal.signal(signal.SIGTERM, _interrupt)
        print(_describe_ray(where), flush=True)
    except RegistryError as exc:
        print(f"error: {exc}")
        return 1
    # From here on a Ctrl-C or SIGTERM, even mid-start or while the table is measured,
    # stops Serve and the embedded databases it started (seen: a SIGTERM during the start
    # left the embedded PostgreSQL running).
    try:
        try:
            info = start_registry(config, phases=phases)
        except RegistryError as exc:
            print(f"error: {exc}")
            return 1
        names = sorted(f"{t.value}/{n}" for t, n, _ in config.specs())
        example = next((n for t, n, _ in config.specs() if t.value == "embeddings"), None)
        print(f"\nProvider registry is serving {', '.join(names) or 'no providers'} at {info['http']}")
        if example:
            print("Try:\n  curl -s -X POST " + info["http"] + "/v1/embeddings -H 'Content-Type: application/json' "
                  f"-d '{{\"model\":\"{example}\",\"input\":[\"hello\"]}}'")
        print(f"  curl -s {info['http']}/v1/providers\nCtrl-C stops it.", flush=True)
        print("\n" + phases.table(stack_memory(markers=_embedded_data_dirs(config))), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        stop_embedded_servers(config)
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _process_began() -> float:
    """This process's start on the monotonic clock, so the table counts the interpreter's start too."""
    import time

    import psutil

    return time.monotonic() - max(0.0, time.time() - psutil.Process().create_time())


def _embedded_data_dirs(config: RegistryConfig) -> tuple[str, ...]:
    """Data dirs of the config's embedded servers: they detach from the replica that starts them."""
    return tuple(os.path.abspath(str(spec.config["data_dir"])) for _, _, spec in config.specs()
                 if isinstance(spec.config.get("data_dir"), str))


def _describe_ray(where: str) -> str:
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    if where == "local":
        return (f"Ray: started a local instance with {cpus:g} logical CPUs ({LOCAL_CPUS_PER_CORE} per core: "
                f"they admit replicas, they do not reserve cores; {LOCAL_CPUS_ENV} sets another count)\n"
                + ingress_switch.describe(LOCAL_INGRESS or ingress_switch.DEFAULT))
    return f"Ray: joined the cluster at {where} ({cpus:g} CPUs); providers get what they ask"


def stop_embedded_servers(config: RegistryConfig) -> None:
    """Stop the embedded databases the providers of ``config`` started (Ctrl-C of `make serve`).

    They outlive provider replicas on purpose (a replaced replica must not
    take the data down with it); the registry that started them stops them.
    A class says how with ``stop_embedded(config)``.
    """
    from providers.registry.loading import load_provider_class

    for ptype, name, spec in config.specs():
        try:
            cls = load_provider_class(spec.class_path, ptype, config.registry.allowed_prefixes())
            stop = getattr(cls, "stop_embedded", None)
            if stop is not None:
                stop(dict(spec.config))
        except Exception as exc:  # stopping is best effort; say what was left running
            print(f"warning: could not stop the embedded server of {ptype.value}/{name}: {exc}")
