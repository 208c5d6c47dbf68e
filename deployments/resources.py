"""Will a provider version fit on the cluster? Asked before anything is deployed.

Without this, a version that cannot be placed sits PENDING while Serve waits
for resources, and the registry waits with it (up to ``deploy_timeout_s``)
while holding its change lock, so every other change waits too. Seen on a
2-core machine: the seed's run-time registration asked 1 CPU with 0.6 free.

Two questions, each answered from Ray's own view:

- could any alive node ever hold one replica (its *total* resources)? A GPU
  asked of a CPU-only cluster never fits: refused at once;
- is there room *now* for every replica (the cluster's *available*
  resources), counting that during a swap or reload the old version keeps
  its replicas until the new one serves? Refused at once, naming what was
  asked and what is free.

An autoscaling cluster adds nodes on demand: set ``registry.check_resources:
false`` there, and the deploy is bounded by ``deploy_timeout_s`` instead.
The free figure is the cluster's sum, not per node: a version that fits the
sum but no single node is caught by Serve's own wait (same timeout).
"""

from __future__ import annotations

from typing import Any

from providers.errors import InsufficientResourcesError
from providers.registry.config import DeploymentOptions
from providers.registry.table import Route

# What operators set for each resource, in the message.
_SETTING = {"CPU": "deployment.num_cpus", "GPU": "deployment.num_gpus", "memory": "deployment.memory"}


def replica_resources(options: DeploymentOptions) -> dict[str, float]:
    need = {"CPU": options.num_cpus, "GPU": options.num_gpus, **options.resources}
    if options.memory:
        need["memory"] = float(options.memory)
    return {k: v for k, v in need.items() if v}


def initial_replicas(options: DeploymentOptions) -> int:
    a = options.autoscaling_config
    if a is None:
        return options.num_replicas or 1
    return max(1, a.initial_replicas if a.initial_replicas is not None else a.min_replicas)


def _amount(resource: str, value: float) -> str:
    if resource == "memory":
        return f"{value / 2**30:.2g} GiB memory"
    return f"{value:g} {resource}"


def check_fits(route: Route, *, replacing: Route | None = None, nodes: list[dict[str, float]] | None = None,
               available: dict[str, float] | None = None) -> None:
    """Raise `InsufficientResourcesError` if ``route`` cannot be placed now.

    ``replacing``: the version that keeps running beside it until the flip.
    ``nodes`` (alive nodes' totals) and ``available`` (the cluster's free
    resources) default to Ray's answers; tests pass their own.
    """
    need = replica_resources(route.spec.deployment)
    if not need:
        return
    nodes = _alive_nodes() if nodes is None else nodes
    who = f"{route.type.value}/{route.name} v{route.version}"
    if not any(all(node.get(k, 0.0) >= v for k, v in need.items()) for node in nodes):
        have = {k: max((node.get(k, 0.0) for node in nodes), default=0.0) for k in need}
        short = ", ".join(f"{_amount(k, v)} (the largest node has {have[k]:g})"
                          for k, v in need.items() if have[k] < v)
        raise InsufficientResourcesError(
            f"{who} asks for {short} per replica, and no node in the cluster has that. Lower the request, "
            "add such a node, or set registry.check_resources: false on an autoscaling cluster that adds it "
            "on demand")
    available = _available() if available is None else available
    replicas = initial_replicas(route.spec.deployment)
    short = [k for k, v in need.items() if v * replicas > available.get(k, 0.0) + 1e-9]
    if not short:
        return
    total = {k: sum(node.get(k, 0.0) for node in nodes) for k in short}
    asks = ", ".join(_amount(k, need[k]) for k in short)
    free = ", ".join(f"{available.get(k, 0.0):g} {k} of {total[k]:g}" if k != "memory" else
                     f"{available.get(k, 0.0) / 2**30:.2g} of {total[k] / 2**30:.2g} GiB memory" for k in short)
    beside = f", while v{replacing.version} still runs" if replacing is not None else ""
    settings = " / ".join(dict.fromkeys(_SETTING.get(k, f"deployment.resources.{k}") for k in short))
    raise InsufficientResourcesError(
        f"{who} asks {asks} per replica (x{replicas}{beside}); free: {free}; set {settings} or add a node")


def check_all_fit(routes: list[Route], *, nodes: list[dict[str, float]] | None = None,
                  available: dict[str, float] | None = None) -> None:
    """Start-up: every provider of a config at once. Each must fit a node, and all
    together the free resources; the message names the largest askers."""
    nodes = _alive_nodes() if nodes is None else nodes
    available = _available() if available is None else available
    for route in routes:
        check_fits(route, nodes=nodes, available={k: float("inf") for k in replica_resources(route.spec.deployment)})
    total: dict[str, float] = {}
    for route in routes:
        for k, v in replica_resources(route.spec.deployment).items():
            total[k] = total.get(k, 0.0) + v * initial_replicas(route.spec.deployment)
    short = [k for k, v in total.items() if v > available.get(k, 0.0) + 1e-9]
    if not short:
        return
    k = short[0]
    askers = sorted(routes, key=lambda r: -replica_resources(r.spec.deployment).get(k, 0.0)
                    * initial_replicas(r.spec.deployment))
    top = ", ".join(f"{r.type.value}/{r.name} {_amount(k, replica_resources(r.spec.deployment).get(k, 0.0))}"
                    f" x{initial_replicas(r.spec.deployment)}" for r in askers[:3]
                    if replica_resources(r.spec.deployment).get(k))
    raise InsufficientResourcesError(
        f"the config's providers ask {_amount(k, total[k])} together ({top}, ...); free: "
        f"{available.get(k, 0.0):g} of {sum(n.get(k, 0.0) for n in nodes):g}; lower their deployment "
        "requests or start Ray with more")


def _alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]


def _available() -> dict[str, float]:
    import ray

    return dict(ray.available_resources())
