"""Start a registry: Ray, Serve's HTTP proxy, every provider, then the router.

`start_registry` is what ``make serve``, the tests and the benchmarks call;
it deploys with the same builders a Serve config file names.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from providers.registry.config import RegistryConfig, load_config
from providers.registry.table import RouteTable

logger = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, num_cpus: int | None = None, env_vars: dict[str, str] | None = None) -> None:
    """Start (or join) Ray with the environment every replica needs.

    ``env_vars`` go through runtime_env, which Ray writes to its logs in
    clear (runtime_env_agent.log): never put a secret there. Secrets (the
    admin token, database passwords) reach replicas by being in the
    environment of the process that starts Ray, which Ray's workers inherit.
    """
    import ray

    if ray.is_initialized():
        return
    # Offline: the model ships in a package; never let a library reach a hub.
    # OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning.
    # Measured on 2 cores, one text on 2 torch threads cost 29 ms of CPU
    # spinning vs 19 ms passive, CPU the proxy and router need.
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_WAIT_POLICY": "PASSIVE", **(env_vars or {})}
    os.environ.update({k: os.environ.get(k, v) for k, v in env.items()})
    ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})


def start_registry(config: RegistryConfig, http: bool = True) -> dict[str, Any]:
    """Deploy every provider of ``config`` and the registry router; return addresses.

    Providers start in parallel; the first failure (a resource no node has, a
    model that does not load) is raised with the provider's name.
    """
    from ray import serve

    from deployments import deployer
    from deployments.table_store import TableStore
    from deployments.registry_app import build_registry_app

    s = config.registry
    serve.start(http_options={"host": s.http_host, "port": s.http_port} if http else None)
    # A fresh start is declarative: the config is the table. Forget run-time
    # changes a previous registry of this name left in GCS.
    TableStore(s.app_name).clear()
    table = RouteTable.from_config(config)
    allowed = list(s.allowed_prefixes())
    if s.check_resources:
        for route in table.routes.values():
            deployer.check_resources(route)
    with ThreadPoolExecutor(max_workers=max(1, len(table.routes))) as pool:
        futures = [pool.submit(deployer.deploy_blocking, r, s.app_name, allowed, s.deploy_timeout_s, False,
                               s.log_encoding)
                   for r in table.routes.values()]
        for f in futures:
            f.result()
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
    try:
        config = load_config(config_path)
        check_port_free(config.registry.http_host, config.registry.http_port)
        ensure_ray()
        info = start_registry(config)
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
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        stop_embedded_servers(config)
    return 0


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
