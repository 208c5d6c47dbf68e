"""Builders of the Serve applications, reachable by import path.

A Serve config file names them with ``import_path`` and ``args``::

    - name: registry--embeddings--minilm--v1
      import_path: serve_app.builders:build_provider_app
      args: {type: embeddings, name: minilm, version: 1, spec: {...}, ...}
    - name: registry
      import_path: serve_app.builders:build_registry_app
      args: {config_path: config/providers.yaml}

and `serve_app.main` calls the same functions, so ``make serve`` and
``serve deploy`` start the same graph.
"""

from __future__ import annotations

import os
from typing import Any

from ray import serve
from ray.serve import Application

from deployments.provider_deployment import ProviderDeployment
from deployments.router import RegistryRouter
from providers.registry.config import RegistryConfig, load_config, parse_config, parse_spec
from providers.registry.interpolation import interpolate_tree
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
        "name": "ProviderDeployment",
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


def build_registry_app(args: dict[str, Any]) -> Application:
    """The router (HTTP ingress and handle entry point) over a config.

    ``args`` holds ``config_path`` (read and interpolated where the
    application is built) or ``config`` (a providers.yaml mapping).
    """
    config = _config_from_args(args)
    r = config.registry.router
    deployment = serve.deployment(RegistryRouter).options(
        name="RegistryRouter",
        num_replicas=r.num_replicas,
        max_ongoing_requests=r.max_ongoing_requests,
        ray_actor_options={"num_cpus": r.num_cpus},
        logging_config={"encoding": config.registry.log_encoding},
    )
    return deployment.bind(config.model_dump(mode="json", by_alias=True))


def _config_from_args(args: dict[str, Any]) -> RegistryConfig:
    if "config" in args:  # already interpolated by the driver, unless it says otherwise
        return parse_config(args["config"], source="args.config", interpolate=bool(args.get("interpolate")))
    return load_config(args.get("config_path", "config/providers.yaml"))
