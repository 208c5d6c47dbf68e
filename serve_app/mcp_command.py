"""``provider-registry mcp``: the registry as an MCP server on stdio, for hosts that launch a command.

It serves the same MCP server as ``/mcp`` (`deployments.mcp_server.build_server`)
over a backend that forwards to a running registry's HTTP API (``GET
/v1/tools``, ``POST /v1/tools/{name}``, ``/v1/providers``, ``/v1/stats``),
so a call passes the router's limits, argument checks, breakers, fallbacks
and deadlines exactly as ``/mcp`` and HTTP callers do. The registry is the
one at ``--url`` (default ``PROVIDER_REGISTRY_URL``, else
http://127.0.0.1:8000). When nothing answers there, the local default
(``--config``, as ``make serve`` runs it) is started in a child process, and
stopped when the host closes the session; ``--no-start`` waits for a registry
instead. Which of the two happened is said on stderr: stdout carries only the
protocol.

This process keeps one stream to its host, so it can do what stateless HTTP
cannot: it polls the tool list every `POLL_S` seconds and sends
``notifications/tools/list_changed`` when a tool is registered, swapped or
deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from deployments.mcp_server import ToolFailed, UnknownTool, build_server

POLL_S = 2.0  # tool-list poll: a registration shows up in a host within about this long
PROBE_S = 2.0  # how long a running registry may take to answer /healthz at start
START_TIMEOUT_S = 900.0  # a cold local start (Ray, the model, PostgreSQL) takes 1-2 min here; room for slow disks
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "http://127.0.0.1:8000"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("PROVIDER_REGISTRY_URL", DEFAULT_URL),
                   help="the registry's HTTP address (default: PROVIDER_REGISTRY_URL, else %(default)s)")
    p.add_argument("--config", default=None,
                   help="providers.yaml to start when no registry answers (default: config/providers.yaml "
                        "here, else the project's)")
    p.add_argument("--no-start", action="store_true",
                   help="never start a registry: wait for one at --url (tool calls fail until it answers)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="longest wait for one answer of the registry, in seconds (default: %(default)s)")


def say(text: str) -> None:
    print(f"provider-registry mcp: {text}", file=sys.stderr, flush=True)


class HttpBackend:
    """The four questions of `deployments.mcp_server.Backend`, asked over the registry's HTTP API."""

    def __init__(self, url: str, timeout_s: float = 600.0, ready: asyncio.Event | None = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.url, timeout=timeout_s)
        self.ready = ready  # set once a registry this process started answers; None: ask at once
        self.timeout_s = timeout_s

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        if self.ready is not None and not self.ready.is_set():
            try:  # the local registry is still starting: wait for it, not for ever
                await asyncio.wait_for(self.ready.wait(), START_TIMEOUT_S)
            except asyncio.TimeoutError:
                raise ToolFailed(f"the registry at {self.url} did not start within {START_TIMEOUT_S:g} s") from None
        try:
            return await self.client.request(method, path, json=body)
        except httpx.TimeoutException:
            raise ToolFailed(f"the registry at {self.url} did not answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise ToolFailed(f"cannot reach the registry at {self.url}: {type(exc).__name__}") from None

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        r = await self._request(method, path, body)
        try:
            doc = r.json()
        except ValueError:
            raise ToolFailed(f"the registry answered {r.status_code} with no JSON") from None
        if r.is_success:
            return doc
        error = doc.get("error") if isinstance(doc, dict) else None
        error = error if isinstance(error, dict) else {}
        message = str(error.get("message") or f"HTTP {r.status_code}")
        param = error.get("param")
        if r.status_code == 404 and error.get("code") == "ProviderNotFoundError":
            raise UnknownTool(message)
        # A bad argument is answered as `{"param": "memories[0].content", "message": "memories[0]...: ..."}`
        # (the registry's errors lead with their field); name the path if the message does not.
        if param and not message.startswith(str(param)):
            message = f"{param}: {message}"
        raise ToolFailed(message)

    async def tools(self) -> list[dict[str, Any]]:
        return (await self._json("GET", "/v1/tools"))["tools"]

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        from urllib.parse import quote

        return (await self._json("POST", f"/v1/tools/{quote(name, safe='')}", arguments))["result"]

    async def providers(self) -> dict[str, Any]:
        return await self._json("GET", "/v1/providers")

    async def stats(self) -> dict[str, Any]:
        return await self._json("GET", "/v1/stats")


def answers(url: str, timeout_s: float = PROBE_S) -> bool:
    import httpx

    try:
        return httpx.get(url.rstrip("/") + "/healthz", timeout=timeout_s).is_success
    except httpx.HTTPError:
        return False


def default_config() -> Path:
    here = Path("config/providers.yaml")
    return here if here.is_file() else ROOT / "config" / "providers.yaml"


def start_local(config: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``make serve``'s command in a child process of its own group; its output goes to stderr."""
    from providers.registry.config import load_config

    cfg = load_config(str(config)).registry
    url = f"http://{cfg.http_host}:{cfg.http_port}{cfg.route_prefix.rstrip('/')}"
    # The project's config names relative paths (.data/pgvector): run where it lives, as `make serve` does.
    cwd = config.resolve().parent.parent if config.resolve().parent.name == "config" else Path.cwd()
    child = subprocess.Popen([sys.executable, "-m", "serve_app", "serve", "--config", str(config.resolve())],
                             stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(), stderr=sys.stderr.fileno(),
                             cwd=str(cwd), start_new_session=True)
    return child, url


def stop_local(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the registry's process: it stops Serve, the embedded databases and its local Ray.

    To that process only, not its group: the group holds the Ray processes it started, and a
    raylet killed under it makes Ray end the driver at once, before it stops its embedded
    PostgreSQL (seen: the database left running). Not waited for: that takes seconds to half
    a minute, and a host kills a server's process group a moment after closing its stdin (the
    SDK's stdio client: 2 s); the registry is in a session of its own, out of that kill's reach."""
    if child.poll() is not None:
        return
    try:
        os.kill(child.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    say(f"stopping the registry it started (process {child.pid}): it shuts down on its own")


async def wait_ready(url: str, child: subprocess.Popen[bytes], ready: asyncio.Event) -> None:
    while not ready.is_set():
        if child.poll() is not None:
            say(f"the registry it started exited with code {child.returncode} (its output is above)")
            return
        if await asyncio.to_thread(answers, url):
            say(f"the registry it started answers at {url}")
            ready.set()
            return
        await asyncio.sleep(1.0)


def tool_signature(tools: list[dict[str, Any]]) -> str:
    return json.dumps([[t.get("name"), t.get("description"), t.get("input_schema"), t.get("error")]
                       for t in sorted(tools, key=lambda t: str(t.get("name")))], sort_keys=True)


class ToolWatch:
    """Sends ``notifications/tools/list_changed`` once the host has listed the tools and the list changes."""

    def __init__(self, backend: HttpBackend) -> None:
        self.backend = backend
        self.session: Any = None  # the host's session, known from its first tools/list
        self.last: str | None = None

    def listed(self, session: Any, tools: list[dict[str, Any]]) -> None:
        self.session, self.last = session, tool_signature(tools)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            if self.session is None:
                continue
            try:
                now = tool_signature(await self.backend.tools())
            except (ToolFailed, UnknownTool, KeyError, TypeError):
                continue  # the registry is away for now; the next poll asks again
            if now != self.last:
                self.last = now
                await self.session.send_tool_list_changed()  # best effort: the SDK drops it on a closed stream


async def serve_stdio(backend: HttpBackend) -> None:
    from mcp.server.lowlevel import NotificationOptions
    from mcp.server.stdio import stdio_server

    watch = ToolWatch(backend)
    server = build_server(backend, on_listed=lambda ctx, tools: watch.listed(ctx.session, tools))
    options = server.create_initialization_options(NotificationOptions(tools_changed=True))
    poller = asyncio.create_task(watch.run())
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, options)
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)


def run(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/")
    child: subprocess.Popen[bytes] | None = None
    ready: asyncio.Event | None = None
    if answers(url):
        say(f"using the running registry at {url} (HTTP)")
    elif args.no_start:
        say(f"no registry answers at {url}; --no-start: tool calls fail until one does")
    else:
        config = Path(args.config) if args.config else default_config()
        try:
            child, url = start_local(config)
        except Exception as exc:  # a bad config: say so and serve nothing
            say(f"no registry answers at {args.url} and the local default cannot start: {exc}")
            return 1
        say(f"no registry answers at {args.url}; starting the local default ({config}) in process {child.pid} "
            f"at {url}; it stops when this session ends")

    async def main() -> None:
        nonlocal ready
        waiter = None
        if child is not None:
            ready = asyncio.Event()
            waiter = asyncio.create_task(wait_ready(url, child, ready))
        backend = HttpBackend(url, args.timeout, ready)
        try:
            await serve_stdio(backend)
        finally:
            if waiter is not None:
                waiter.cancel()
            await backend.aclose()

    # A host ends a session by closing stdin, or with SIGTERM: either way the registry this
    # process started must stop with it (the default SIGTERM action would skip the finally below).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        if child is not None:
            stop_local(child)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
