"""Start, wait for and stop one provider's Serve application.

Used by the driver at start-up (`serve_app.main`) and by the router for
run-time registration and reloads (``serve.run`` works from inside a replica,
measured with Ray 2.60). Blocking Serve calls run in a thread so a router's
event loop keeps serving while a provider loads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from deployments.logs import app_log, provider_log
from deployments.provider_app import build_provider_app, provider_app_args
from deployments.resources import check_fits
from providers.errors import ConfigError, DeploymentError
from providers.registry.loading import load_provider_class
from providers.registry.table import Route, provider_app_name

logger = logging.getLogger(__name__)

STATUS_POLL_S = 0.2


# Building a Serve deployment is not thread-safe in Ray 2.60:
# DeploymentConfig() registers and unregisters a module for cloudpickle's
# pickle-by-value in a process-wide table, and two threads doing it at once
# fail with "... is not registered for pickle by value" (seen here when
# providers were deployed in parallel). Builds and submits take this lock;
# the long wait for RUNNING does not. serve.status() takes it too: with five
# providers starting at once, a status poll in one thread broke a build in
# another the same way (seen in `make serve`), so every status read goes
# through `serve_status()`.
_BUILD_LOCK = threading.Lock()
# The last status read, as (monotonic time it was asked, status). serve.status()
# asks the controller and cloudpickles every deployment's config: py-spy put it at
# about a quarter of a router replica's samples under the test suite (the orphan
# sweep plus every get_stats), and five providers starting at once each polled it
# five times a second. Readers that can use a slightly older answer share one.
_last_status: tuple[float, Any] | None = None


def serve_status(max_age_s: float = 0.0) -> Any:
    """``serve.status()``, never at the same time as a deployment build in this process.

    ``max_age_s``: an answer asked at most this long ago will do. Every submit
    and delete in this process drops the kept answer, so nobody waits on a
    status from before their own change.
    """
    global _last_status
    from ray import serve

    with _BUILD_LOCK:
        asked = time.monotonic()
        if max_age_s > 0 and _last_status is not None and asked - _last_status[0] <= max_age_s:
            return _last_status[1]
        status = serve.status()
        _last_status = (asked, status)
        return status


def _forget_status() -> None:
    global _last_status
    _last_status = None


def app_name_of(route: Route, registry_app: str) -> str:
    return provider_app_name(registry_app, route.type, route.name, route.version)


def check_replica_limit(route: Route, allowed_prefixes: list[str]) -> None:
    """Refuse more replicas than the provider can run with.

    A class may define ``max_replicas(config) -> int | None``: an embedded
    database with one writer process (Qdrant's local mode locks its
    directory; Ladybug has one writer) says 1, and a second replica would
    fail to open it, or worse, corrupt it.
    """
    cls = load_provider_class(route.spec.class_path, route.type, allowed_prefixes)
    limit_of = getattr(cls, "max_replicas", None)
    if limit_of is None:
        return
    limit = limit_of(dict(route.spec.config))
    d = route.spec.deployment
    wanted = d.autoscaling_config.max_replicas if d.autoscaling_config else (d.num_replicas or 1)
    if limit is not None and wanted > limit:
        key = "autoscaling_config.max_replicas" if d.autoscaling_config else "num_replicas"
        raise ConfigError(
            f"{route.spec.class_path} with this config runs at most {limit} replica(s) (one process may open "
            f"its data), and {wanted} were asked for", f"{route.type.value}.providers.{route.name}.deployment.{key}")


def deploy_blocking(route: Route, registry_app: str, allowed_prefixes: list[str], timeout_s: float, check: bool = True,
                    log_encoding: str = "TEXT", replacing: Route | None = None) -> str:
    """Deploy one version of a provider and wait until it is RUNNING.

    ``check``: refuse at once what cannot be placed now (`deployments.resources`),
    counting ``replacing``, the version that runs beside it until the flip."""
    from ray import serve

    check_replica_limit(route, allowed_prefixes)
    if check:
        check_fits(route, replacing=replacing)
    app_name = app_name_of(route, registry_app)
    with _BUILD_LOCK:
        app = build_provider_app(provider_app_args(route, registry_app, allowed_prefixes, log_encoding))
        provider_log(logger, logging.INFO, "deploying as application %s", app_name,
                     ptype=route.type, name=route.name, version=route.version)
        serve._run(app, name=app_name, route_prefix=None, _blocking=False)
        _forget_status()
    wait_running(app_name, timeout_s, who=f"{route.type.value} provider {route.name!r}")
    return app_name


def wait_running(app_name: str, timeout_s: float, who: str) -> None:
    from ray.serve.schema import ApplicationStatus

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        # Several providers starting together share one status read per poll.
        status = serve_status(max_age_s=STATUS_POLL_S).applications.get(app_name)
        if status is not None:
            if status.status == ApplicationStatus.RUNNING:
                return
            last = _status_message(status)
            if status.status in (ApplicationStatus.DEPLOY_FAILED, ApplicationStatus.UNHEALTHY):
                delete_blocking(app_name)
                raise DeploymentError(f"{who} failed to start: {last}")
        time.sleep(STATUS_POLL_S)
    delete_blocking(app_name)
    raise DeploymentError(f"{who} did not become RUNNING within {timeout_s:g}s: {last or 'no status'}")


def _status_message(status: Any) -> str:
    parts = [status.message] if status.message else []
    for dep in status.deployments.values():
        if dep.message:
            parts.append(dep.message)
    text = " | ".join(parts) or str(status.status)
    # Serve appends the replica's whole traceback; the last line names the error.
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:2000] if lines else text


def delete_blocking(app_name: str) -> None:
    from ray import serve

    try:
        serve.delete(app_name, _blocking=True)
        _forget_status()
    except Exception as exc:  # deleting is best effort; the caller reports the real error
        app_log(logger, logging.WARNING, "could not delete application %s: %s", app_name, exc, app_name=app_name)


async def deploy(route: Route, registry_app: str, allowed_prefixes: list[str], timeout_s: float, check: bool = True,
                 log_encoding: str = "TEXT", replacing: Route | None = None) -> str:
    return await asyncio.to_thread(deploy_blocking, route, registry_app, allowed_prefixes, timeout_s, check,
                                   log_encoding, replacing)


async def delete(app_name: str) -> None:
    await asyncio.to_thread(delete_blocking, app_name)
