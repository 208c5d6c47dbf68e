"""Where a benchmark runs and what it measures: flags, deploy/remove, and the record of the place.

Three modes, chosen by flags every benchmark shares (`add_target_args`):

- own (no ``--config``, no ``--registry-url``): the benchmark's built-in config,
  on a local Ray of its own, or on ``--address`` under an app name of its own;
- ``--config providers.yaml``: that file's provider (``--provider``) and what it
  depends on, deployed on ``--address`` (or a local Ray) under an app name of its own;
- ``--registry-url URL`` (with ``--app-name``): a registry that is already
  running. Nothing is deployed, swapped or stopped.

Removal deletes exactly the Serve applications named with the benchmark's own
app name and its GCS table; it never calls ``serve.shutdown()`` on a cluster it
joined (that would stop every application there), and stops Ray only when it
started Ray itself.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def add_target_args(ap: argparse.ArgumentParser, default_provider: str = "embeddings/minilm") -> None:
    g = ap.add_argument_group("where to run (docs/benchmarks.md#on-a-cluster)")
    g.add_argument("--address", default=None,
                   help="Ray to join: auto, ray://host:10001 or a GCS host:port; default: a local Ray of its own")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--config", help="providers.yaml: deploy --provider (and its depends_on) under an own app name,"
                                      " remove exactly that afterwards")
    src.add_argument("--registry-url", help="a running registry's base URL: measure it; deploy and stop nothing")
    g.add_argument("--app-name", default="registry", help="with --registry-url: its Serve application name")
    g.add_argument("--provider", default=default_provider, help="type/name to measure")
    g.add_argument("--out", default=str(RESULTS), help="folder for the JSON and PNG results")


def mode_of(args: argparse.Namespace) -> str:
    return "running" if args.registry_url else ("config" if args.config else "own")


def split_provider(value: str) -> tuple[str, str]:
    from providers.types import ProviderType

    ptype, sep, name = value.partition("/")
    if not sep or not name:
        raise SystemExit(f"--provider must be type/name (embeddings/minilm), got {value!r}")
    return ProviderType.parse(ptype).value, name


@dataclass
class Target:
    """One place to measure: the registry's HTTP base URL, its app name, and what to undo."""

    mode: str
    ptype: str
    name: str
    address: str | None = None  # what was joined; None: no Ray in this process
    started_ray: bool = False
    url: str = ""
    app_name: str = ""
    config_hash: str | None = None
    config_doc: dict[str, Any] | None = None
    deployed: list[str] = field(default_factory=list)  # app names this process deployed

    # -- Ray -------------------------------------------------------------------------
    def connect(self, address: str | None, need_ray: bool) -> None:
        """Join ``address`` (or start a local Ray if ``need_ray``); say which in ``self.address``."""
        from serve_app.main import ensure_ray, resolve_address

        if address is None and not need_ray:
            return
        if self.mode == "running" and resolve_address(address) == "local":
            # `auto` found no cluster: measuring over HTTP needs none, and a local Ray
            # started here would only describe this laptop, not where the registry runs.
            print("note: no Ray cluster found at --address; measuring over HTTP only", flush=True)
            return
        where = ensure_ray(address=address or "local")
        self.started_ray = where == "local"
        self.address = where

    # -- deploy and remove -------------------------------------------------------------
    def deploy(self, config: Any, label: str = "bench") -> None:
        """Deploy ``config`` (a RegistryConfig) under an app name of this run's own."""
        from serve_app.main import start_registry

        if not self.started_ray:
            # A shared cluster: an app name and route prefix nobody else uses (a running
            # registry holds "/"; two apps on one prefix make serve.run fail).
            label = f"{label}-{secrets.token_hex(3)}"
            config.registry.route_prefix = f"/{label}"
        config.registry.app_name = label
        self.app_name = label
        self.config_doc = config.model_dump(mode="json", by_alias=True)
        self.config_hash = self.config_hash or _hash(json.dumps(self.config_doc, sort_keys=True))
        self.deployed.append(label)
        start_registry(config)
        self.url = _proxy_url(config.registry.http_host) + config.registry.route_prefix.rstrip("/")

    def remove(self, timeout_s: float = 120.0) -> list[str]:
        """Delete every Serve app named ``<app>`` or ``<app>--*`` this run deployed, and its table.

        The router's cleanup deletes the current versions; a version a swap
        retires *later* is deleted by the router too, unless the router goes
        first: whatever is left under the prefix is deleted here. Returns what
        is still there after ``timeout_s`` (empty on success)."""
        from ray import serve

        from deployments import deployer
        from serve_app import ProviderRegistry

        left: list[str] = []
        for app in self.deployed:
            try:
                asyncio.run(ProviderRegistry(app_name=app).cleanup())
            except Exception as exc:  # a router that failed to start: delete by name below
                print(f"note: cleanup through the router of {app} failed ({exc}); deleting by name", flush=True)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                ours = [a for a in serve.status().applications if a == app or a.startswith(f"{app}--")]
                if not ours:
                    break
                for a in ours:
                    deployer.delete_blocking(a)
            from deployments.table_store import TableStore

            TableStore(app).clear()
            left += [a for a in serve.status().applications if a == app or a.startswith(f"{app}--")]
        self.deployed = []
        return left

    def close(self) -> None:
        """Disconnect; stop Serve and Ray only where this process started them."""
        import ray

        if not ray.is_initialized():
            return
        if self.started_ray:
            from ray import serve

            serve.shutdown()
        ray.shutdown()


def open_target(args: argparse.Namespace, need_ray: bool = True) -> Target:
    """The target the flags name, connected; deploy with `deploy_from_args` unless running."""
    ptype, name = split_provider(args.provider)
    target = Target(mode=mode_of(args), ptype=ptype, name=name)
    if target.mode == "running":
        target.url, target.app_name = args.registry_url.rstrip("/"), args.app_name
        target.connect(args.address, need_ray=False)
        return target
    target.connect(args.address, need_ray=need_ray)
    return target


def config_subset(path: str, ptype: str, name: str, http_port: int | None = None,
                  keep_fallbacks: bool = False, also: tuple[tuple[str, str], ...] = ()) -> tuple[Any, str]:
    """The file's ``ptype/name`` and what it depends on (transitively), and the file's hash.

    The rest of the file (a store with an embedded PostgreSQL, a graph, fallback
    twins) is not what is measured: left out, it costs neither start-up, GPUs nor
    CPU beside the load. ``keep_fallbacks``: the chosen provider's fallback chain
    stays (failover measures the switch to it); ``also``: more providers the
    benchmark needs beside the measured one (memory.store to fill memory.search)."""
    import yaml

    from providers.registry.config import parse_config

    raw = Path(path).read_bytes()
    # Selected before ${VAR} interpolation: variables of providers left out (a
    # store's password) need not be set on the machine that runs the benchmark.
    doc = yaml.safe_load(raw) or {}
    entries = {(t, n): e for t, section in doc.items() if t != "registry" and isinstance(section, dict)
               for n, e in (section.get("providers") or {}).items()}
    wanted, todo = set(), [(ptype, name), *also]
    shared_cache = ((doc.get("registry") or {}).get("embedding_cache") or {}).get("cache")
    if shared_cache:  # the registry's own settings name it
        todo.append(("cache", shared_cache))
    while todo:
        key = todo.pop()
        if key in wanted:
            continue
        if key not in entries:
            raise SystemExit(f"{path} has no provider {key[0]}/{key[1]}; it has "
                             f"{', '.join(sorted(f'{t}/{n}' for t, n in entries))}")
        wanted.add(key)
        entry = entries[key] or {}
        todo += [tuple(d.split("/", 1)) for d in entry.get("depends_on") or []]
        if keep_fallbacks and key == (ptype, name):
            todo += [(ptype, f) for f in entry.get("fallback") or []]
        if entry.get("embedder"):  # a store's embedding-space guard names its embedder
            todo.append(("embeddings", entry["embedder"]))
    out: dict[str, Any] = {"registry": dict(doc.get("registry") or {})}
    for t, n in wanted:  # a type's value is its top-level key in providers.yaml
        entry = dict(entries[(t, n)] or {})
        # A fallback chain is not the measured path, and its providers (a vLLM twin of
        # the model) would double what the run occupies: only names deployed anyway stay.
        entry["fallback"] = [f for f in entry.get("fallback") or [] if (t, f) in wanted]
        out.setdefault(t, {"providers": {}})["providers"][n] = entry
    if http_port is not None:
        out["registry"]["http_port"] = http_port
    return parse_config(out, source=path), _hash(raw)


def deploy_chosen(target: Target, args: argparse.Namespace, own_config: Callable[[int], Any] | None,
                  adapt: Callable[[Any], None] | None = None, keep_fallbacks: bool = False,
                  also: tuple[tuple[str, str], ...] = ()) -> None:
    """Deploy what the flags name: ``--config``'s provider (``adapt`` may edit the parsed
    config first: a table of the run's own), or the benchmark's ``own_config(http_port)``.
    A running registry (``--registry-url``) gets nothing."""
    from providers.net import free_port

    if target.mode == "config":
        config, target.config_hash = config_subset(args.config, target.ptype, target.name, free_port(),
                                                   keep_fallbacks=keep_fallbacks, also=also)
        if adapt is not None:
            adapt(config)
        target.deploy(config)
    elif target.mode == "own" and own_config is not None:
        target.deploy(own_config(free_port()))


def finish(target: Target) -> list[str]:
    """Remove what this run deployed (never anything else), disconnect; what is left, by name."""
    try:
        return target.remove() if target.deployed else []
    finally:
        target.close()


def target_fields(target: Target, left: list[str]) -> dict[str, Any]:
    """The keys every benchmark's JSON carries about where it measured."""
    return {"mode": target.mode, "provider": f"{target.ptype}/{target.name}", "registry_url": target.url,
            "app_name": target.app_name, "left_deployed": left}


def refuse_running(args: argparse.Namespace, benchmark: str, why: str) -> None:
    """Exit 2 before touching anything: with ``--registry-url`` this benchmark would have to
    change or stop what it did not start (the rule: it never does)."""
    if mode_of(args) == "running":
        import sys

        print(f"{benchmark}: --registry-url measures a registry read-only, and this benchmark {why}. "
                         "Use --config providers.yaml (with --address for a cluster): it deploys its own copy "
                         "of the provider under an app name of its own and removes exactly that afterwards.",
              file=sys.stderr)
        raise SystemExit(2)


def private_tables(tag: str) -> Callable[[Any], None]:
    """For ``deploy_chosen(adapt=...)``: every vector store of the subset writes to a
    table/collection of the run's own (``bench_<tag>``), never one the file's registry uses."""
    def adapt(config: Any) -> None:
        for spec in config.vector_stores.providers.values():
            # Each store names its table its own way; a store with neither key gets neither.
            cls = spec.class_path.lower()
            key = ("collection_name" if "qdrant" in cls or "collection_name" in spec.config
                   else "table_name" if "pgvector" in cls or "table_name" in spec.config else None)
            if key:
                spec.config[key] = f"bench_{tag}"
    return adapt


def run_tag() -> str:
    """A short name for what one run writes (a table, ids), unique on a shared cluster."""
    return secrets.token_hex(3)


def _hash(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def _proxy_url(configured_host: str) -> str:
    """The proxy Serve actually runs: on a cluster whose Serve was started by someone
    else, our http options were ignored (ray/serve/_private/api.py, _check_http_options)."""
    from ray.serve.context import _get_global_client

    http = _get_global_client().http_config
    host = configured_host if http.host in ("0.0.0.0", "::", "") else http.host
    return f"http://{host}:{http.port}"


# -- where it ran ----------------------------------------------------------------------
def describe_environment(target: Target) -> dict[str, Any]:
    """Nodes, CPUs, GPUs and their types, versions, config hash: stored beside every result."""
    out: dict[str, Any] = {"mode": target.mode, "provider": f"{target.ptype}/{target.name}",
                           "registry_url": target.url, "app_name": target.app_name,
                           "ray_address": target.address, "config_hash": target.config_hash,
                           "driver": {"host": platform.node(), "cpus": os.cpu_count(),
                                      "python": platform.python_version()},
                           "versions": _versions(), "git": _git()}
    import sys

    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            out["nodes"] = _nodes()
            out["cluster"] = {k: sum(n[k] for n in out["nodes"]) for k in ("cpus", "gpus")}
    smi = _nvidia_smi()
    if smi:
        out["driver"]["nvidia_smi"] = smi
    return out


def _versions() -> dict[str, str | None]:
    versions = {}
    for dist in ("ray", "torch", "provider-registry", "sentence-transformers", "openvino", "onnxruntime"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def _git() -> dict[str, Any] | None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip() or None, "dirty": bool(dirty.stdout.strip())}


def _nvidia_smi() -> list[str] | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return [ln.strip() for ln in r.stdout.splitlines() if ln.strip()] or None


def _nodes() -> list[dict[str, Any]]:
    """Every live node as Ray sees it; nvidia-smi run on each node that declares GPUs.

    Ray's ``accelerator_type:<T>`` resource names the GPU model Ray detected; a
    node started with ``--num-gpus`` and no GPU has none, and nvidia-smi there
    answers nothing, which is how a declared-but-absent GPU shows in a result."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        nodes.append({"node_id": n["NodeID"], "address": n.get("NodeManagerAddress"),
                      "cpus": res.get("CPU", 0.0), "gpus": res.get("GPU", 0.0),
                      "accelerator_types": sorted(k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")),
                      "memory_gib": round(res.get("memory", 0.0) / 2**30, 1)})
    smi = ray.remote(num_cpus=0)(_nvidia_smi)
    refs = {n["node_id"]: smi.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["node_id"], soft=False))
            .remote() for n in nodes if n["gpus"]}
    for n in nodes:
        if n["node_id"] in refs:
            try:
                n["nvidia_smi"] = ray.get(refs[n["node_id"]], timeout=60)
            except Exception as exc:  # a node that cannot run a task: say so, keep the rest
                n["nvidia_smi"] = f"unavailable: {type(exc).__name__}"
    return nodes


def write_result(out_dir: str, name: str, result: dict[str, Any]) -> Path:
    """``<out>/<name>.json``; the benchmark still prints the same object as its last line."""
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path
