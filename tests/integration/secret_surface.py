"""What the integration session records for its final secret scan (test_zz_no_secret_in_logs.py).

Installed for the whole session by conftest.py: every HTTP response body read in
this process (httpx, requests), every Python API answer and error (through
``ProviderRegistry._ask``, which every call of the seed's API goes through), the
output of every subprocess run with captured output (the CLI), and pytest's
report of every test (captured stdout, stderr and log lines, and failures).

The secrets: those the session configures (the admin token, the store's
password, Ray's own token) and every secret-looking value a test sends in a
provider config, learned as it is sent (Python API, admin HTTP, the CLI's
``--config``), so a test that registers a provider with an ``api_key`` is
covered without being listed here. Findings name the secret by label only.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from typing import Any

from providers.registry.redaction import secret_values
from tests.secret_scan import Recorder, Secret, install_http_recorder

# Learned values shorter than this are not scanned for: a test's "pw" or "x" would
# match everywhere and prove nothing.
MIN_LEARNED = 8
PROJECT_LOGGERS = ("providers", "deployments", "serve_app")

RECORDER = Recorder([])


def add(label: str, value: str | None) -> None:
    if value:
        RECORDER.add_secret(Secret(label, value))


def learn_config(source: str, config: Any) -> None:
    """Every value under a secret-looking key (and every DSN password) in ``config``."""
    known = {s.value for s in RECORDER.secrets}
    for value in sorted(secret_values(config or {})):
        if len(value) >= MIN_LEARNED and value not in known:
            add(f"secret #{len(RECORDER.secrets) + 1} (a provider config sent by {source})", value)


def ray_token() -> str | None:
    """Ray's own auth token, when this Ray runs with token authentication (the default
    for a local ``ray.init()`` since Ray 2.59)."""
    try:
        from ray._raylet import AuthenticationTokenLoader

        loader = AuthenticationTokenLoader.instance()
        return loader.get_raw_token(ignore_auth_mode=True) if loader.has_token(ignore_auth_mode=True) else None
    except Exception:  # no token support in this Ray, or none configured
        return None


def record_report(report: Any) -> None:
    """A test's report: what pytest captured (stdout, stderr, log) and its failure, if any."""
    where = f"{report.nodeid} ({report.when})"
    for title, content in report.sections:
        RECORDER.record("pytest output", f"{where} {title}", content)
    if report.failed:
        RECORDER.record("test failure", where, report.longreprtext)


def install() -> Callable[[], None]:
    """Start recording; returns the function that stops it."""
    undo: list[Callable[[], None]] = [install_http_recorder(RECORDER)]
    undo.append(_learn_from_admin_requests())
    undo.append(_record_python_api())
    undo.append(_record_subprocesses())
    levels = {name: logging.getLogger(name).level for name in PROJECT_LOGGERS}
    for name in PROJECT_LOGGERS:  # INFO lines reach pytest's captured log, and so the scan
        logging.getLogger(name).setLevel(logging.INFO)
    undo.append(lambda: [logging.getLogger(n).setLevel(level) for n, level in levels.items()])

    def uninstall() -> None:
        for step in reversed(undo):
            step()

    return uninstall


def _learn_from_admin_requests() -> Callable[[], None]:
    import httpx

    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def learn(request: httpx.Request) -> None:
        if request.method in ("POST", "PUT") and "/v1/admin/providers/" in request.url.path:
            try:
                body = json.loads(request.content or b"{}")
            except (httpx.RequestNotRead, ValueError):
                return
            if isinstance(body, dict):
                learn_config("admin HTTP", body.get("config"))

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        learn(request)
        return sync_send(self, request, **kwargs)

    async def asend(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        learn(request)
        return await async_send(self, request, **kwargs)

    httpx.Client.send, httpx.AsyncClient.send = send, asend

    def undo() -> None:
        httpx.Client.send, httpx.AsyncClient.send = sync_send, async_send

    return undo


def _record_python_api() -> Callable[[], None]:
    from serve_app.client import ProviderRegistry

    ask = ProviderRegistry._ask

    async def recorded_ask(self: ProviderRegistry, method: str, *args: Any, **kwargs: Any) -> Any:
        if method in ("register_provider", "swap_provider"):
            for arg in args:
                if isinstance(arg, dict):
                    learn_config("the Python API", arg.get("config", arg))
        try:
            result = await ask(self, method, *args, **kwargs)
        except Exception as exc:
            RECORDER.record("Python API error", method, f"{type(exc).__name__}: {exc}")
            raise
        RECORDER.record("Python API answer", method, repr(result))
        return result

    ProviderRegistry._ask = recorded_ask

    def undo() -> None:
        ProviderRegistry._ask = ask

    return undo


def _record_subprocesses() -> Callable[[], None]:
    run = subprocess.run

    def recorded_run(args: Any, *pargs: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
        for flag, value in zip(argv, argv[1:]):
            if flag == "--config" and value.lstrip().startswith("{"):
                try:
                    learn_config("the CLI", json.loads(value))
                except ValueError:
                    pass
        result = run(args, *pargs, **kwargs)
        name = " ".join(argv[:4])[:120]
        for stream in (result.stdout, result.stderr):
            if isinstance(stream, (str, bytes)):
                RECORDER.record("subprocess output", name, stream)
        return result

    subprocess.run = recorded_run

    def undo() -> None:
        subprocess.run = run

    return undo
