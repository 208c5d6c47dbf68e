"""The registry application: the router (HTTP ingress and handle entry point) over a config.

Named by Serve config files as ``serve_app.builders:build_registry_app`` with
``args: {config_path: config/providers.yaml}``; `serve_app.main` calls it too.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from deployments.names import ROUTER_DEPLOYMENT_NAME
from deployments.router import RegistryRouter
from providers.registry.config import RegistryConfig, load_config, parse_config


def build_registry_app(args: dict[str, Any]) -> Application:
    """The router (HTTP ingress and handle entry point) over a config.

    ``args`` holds ``config_path`` (read and interpolated where the
    application is built) or ``config`` (a providers.yaml mapping).
    """
    config = _config_from_args(args)
    r = config.registry.router
    deployment = serve.deployment(RegistryRouter).options(
        name=ROUTER_DEPLOYMENT_NAME,
        num_replicas=r.num_replicas,
        max_ongoing_requests=r.max_ongoing_requests,
        # Serve's own admission control: the proxy refuses past this queue with the status
        # and Retry-After below (ray/serve/_private/http_util.py, BackPressureError branch).
        max_queued_requests=r.max_queued_requests,
        backpressure_config={"status_code": 503, "retry_after_s": r.retry_after_s},
        ray_actor_options={"num_cpus": r.num_cpus, "resources": r.resources},
        logging_config={"encoding": config.registry.log_encoding},
    )
    return deployment.bind(config.model_dump(mode="json", by_alias=True))


def _config_from_args(args: dict[str, Any]) -> RegistryConfig:
    if "config" in args:  # already interpolated by the driver, unless it says otherwise
        return parse_config(args["config"], source="args.config", interpolate=bool(args.get("interpolate")))
    return load_config(args.get("config_path", "config/providers.yaml"))
