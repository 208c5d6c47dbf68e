"""One provider version as a Serve application: its builder and its arguments.

A Serve config file names the builder by import path and passes the
arguments `provider_app_args` writes::

    - name: registry--embeddings--minilm--v1
      import_path: serve_app.builders:build_provider_app
      args: {type: embeddings, name: minilm, version: 1, spec: {...}, ...}

and the deployer (run-time registration, `make serve`) calls the same
function, so ``make serve`` and ``serve deploy`` start the same graph.
"""

from __future__ import annotations

import os
from typing import Any

from ray import serve
from ray.serve import Application

from deployments.names import PROVIDER_DEPLOYMENT_NAME
from deployments.provider_deployment import ProviderDeployment
from providers.registry.config import parse_spec
from providers.registry.interpolation import interpolate_tree
from providers.registry.table import Route
from providers.types import ProviderType


def build_provider_app(args: dict[str, Any]) -> Application:
    """One provider version as its own application (no HTTP route).

    With ``interpolate: true`` (what ``provider-registry build`` writes) the
    spec's ``${VAR}`` are resolved here, on the cluster, from the environment
    Ray was started with: secrets never sit in the Serve config file.
    """
    ptype = ProviderType.parse(args["type"])
    name = args["name"]
    path = f"{ptype.value}.providers.{name}"
    raw = interpolate_tree(args["spec"], os.environ, path) if args.get("interpolate") else args["spec"]
    spec = parse_spec(raw, path)
    d = spec.deployment
    options: dict[str, Any] = {
        "name": PROVIDER_DEPLOYMENT_NAME,
        "ray_actor_options": {
            "num_cpus": d.num_cpus,
            "num_gpus": d.num_gpus,
            **({"memory": d.memory} if d.memory else {}),
            **({"resources": d.resources} if d.resources else {}),
        },
        "max_ongoing_requests": d.max_ongoing_requests,
        "max_queued_requests": d.max_queued_requests,
        "health_check_period_s": d.health_check_period_s,
        "health_check_timeout_s": d.health_check_timeout_s,
        "graceful_shutdown_timeout_s": d.graceful_shutdown_timeout_s,
        "user_config": {"config": spec.config, "batching": d.batching.model_dump()},
        "logging_config": {"encoding": args.get("log_encoding", "TEXT")},
    }
    if d.autoscaling_config is not None:
        options["autoscaling_config"] = d.autoscaling_config.model_dump(exclude_none=True)
    else:
        options["num_replicas"] = d.num_replicas or 1
    deployment = serve.deployment(ProviderDeployment).options(**options)
    return deployment.bind(ptype.value, name, spec.class_path, list(args.get("allowed_prefixes", [])),
                           args.get("registry_app", "registry"), args.get("version"))


def provider_app_args(route: Route, registry_app: str, allowed_prefixes: list[str],
                      log_encoding: str = "TEXT") -> dict[str, Any]:
    """Arguments of `build_provider_app` (JSON-able, for Serve configs too)."""
    return {
        "registry_app": registry_app,
        "type": route.type.value,
        "name": route.name,
        "version": route.version,
        "spec": route.spec.model_dump(mode="json", by_alias=True),
        "allowed_prefixes": list(allowed_prefixes),
        "log_encoding": log_encoding,
    }
