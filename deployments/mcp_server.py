"""The registry over the Model Context Protocol: tools, two resources, the bearer check.

One MCP server definition (`build_server`) over a *backend* that answers four
questions: the tools, a tool call, the provider table, the stats. Two
backends exist:

- `CoreBackend` (here), inside the router: ``/mcp`` on the registry's own
  port. A ``tools/call`` is ``core.call(TOOL, name, "invoke", [arguments])``,
  the very call ``POST /v1/tools/{name}`` makes, so it passes the same limits,
  argument check (`tools_api.ArgumentGuard`), breakers, fallbacks and
  deadlines;
- ``serve_app.mcp_command.HttpBackend``, in ``provider-registry mcp`` (stdio):
  the registry's HTTP API, which ends in the same call.

Tools are the TOOL providers of the live route table, listed on every
``tools/list`` (a tool registered, swapped or deleted at run time shows up on
the next list). A bad argument or a failing provider is a ``CallToolResult``
with ``isError`` and the registry's message (a bad argument names its path,
``memories[0].content``), so a model can correct itself; an unknown tool is
the protocol's error (-32602, Invalid params), as the MCP specification lists
it, naming the known tools. No exception of ours reaches the SDK: its
catch-all would answer with code 0.

``/mcp`` is the SDK's Streamable HTTP session manager in **stateless** mode
with **JSON** responses: every POST is served on its own by whichever router
replica Serve's proxy picks (the proxy has no session affinity, and a session
kept in one replica would break on the next request reaching another), and a
JSON answer needs no SSE stream through the proxy. The price: no standing
stream, so ``notifications/tools/list_changed`` cannot be sent over HTTP (the
server says ``listChanged: false``); a client lists again. The stdio command
keeps one stream and does send it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
from typing import Any, Protocol

import orjson

logger = logging.getLogger("ray.serve")

SERVER_NAME = "provider-registry"
INSTRUCTIONS = ("The provider registry of an AI memory server. Tools: the registry's TOOL providers "
                "(memory.store, memory.search, ...). Resources: registry://providers (the provider table, "
                "secrets redacted) and registry://stats (calls, failures, breakers, latency).")
RESOURCES = {
    "registry://providers": ("providers", "The provider table: every provider, its class, config (secrets "
                             "redacted), fallbacks, health and breaker."),
    "registry://stats": ("stats", "Usage statistics: calls, failures, fallbacks, breakers, latency, "
                         "embedding cache."),
}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class UnknownTool(Exception):
    """No tool of that name: the protocol's Invalid params error."""


class ToolFailed(Exception):
    """The call was refused or failed: an ``isError`` result carrying this message."""


class Backend(Protocol):
    async def tools(self) -> list[dict[str, Any]]:
        """``GET /v1/tools``'s entries: ``name``, ``description``, ``input_schema`` (or ``error``)."""

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """The tool's result; raises `UnknownTool` or `ToolFailed`."""

    async def providers(self) -> dict[str, Any]: ...

    async def stats(self) -> dict[str, Any]: ...


def to_json(value: Any) -> str:
    # orjson with numpy, as the HTTP answers: stats and results may hold numpy scalars.
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def build_server(backend: Backend, on_listed: Any = None) -> Any:
    """The low-level SDK server (tools change at run time: no decorator-made static list).

    ``on_listed(ctx, entries)``, when given, sees each tool list a client was
    sent, with the request's context (the stdio command watches for changes)."""
    import mcp_types as types  # imported here: the CLI imports this module for every command
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import MCPError
    from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        try:
            listed = await backend.tools()
        except ToolFailed as exc:
            raise MCPError(INTERNAL_ERROR, f"cannot list the tools: {exc}") from None
        if on_listed is not None:
            on_listed(ctx, listed)
        tools = []
        for entry in listed:
            schema = entry.get("input_schema")
            if "error" in entry or not isinstance(schema, dict):
                continue  # a tool that cannot describe itself cannot be offered (GET /v1/tools says why)
            if "type" not in schema:  # MCP requires an object schema at the root
                schema = {"type": "object", **schema}
            tools.append(types.Tool(name=entry["name"], description=entry.get("description") or None,
                                    input_schema=schema))
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            result = await backend.call(params.name, dict(params.arguments or {}))
        except UnknownTool as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from None
        except ToolFailed as exc:
            return types.CallToolResult(content=[types.TextContent(text=str(exc))], is_error=True)
        text = to_json(result)
        structured = orjson.loads(text)
        return types.CallToolResult(content=[types.TextContent(text=text)],
                                    structured_content=structured if isinstance(structured, dict) else None)

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[
            types.Resource(uri=uri, name=name, description=text, mime_type="application/json")
            for uri, (name, text) in RESOURCES.items()])

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        if uri not in RESOURCES:
            raise MCPError(INVALID_PARAMS, f"unknown resource {uri[:200]!r}; known: {sorted(RESOURCES)}")
        try:
            body = await (backend.providers() if uri == "registry://providers" else backend.stats())
        except ToolFailed as exc:
            raise MCPError(INTERNAL_ERROR, f"cannot read {uri}: {exc}") from None
        return types.ReadResourceResult(contents=[
            types.TextResourceContents(uri=uri, mime_type="application/json", text=to_json(body))])

    return Server(SERVER_NAME, version=_version(), instructions=INSTRUCTIONS, on_list_tools=list_tools,
                  on_call_tool=call_tool,
                  on_list_resources=list_resources, on_read_resource=read_resource)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("provider-registry")
    except PackageNotFoundError:  # run from a checkout without `pip install -e .`
        return ""


class CoreBackend:
    """The router's own parts: the call chain of `RouterCore`, the listings of `Observability`."""

    def __init__(self, core: Any, observability: Any) -> None:
        self.core, self.observability = core, observability

    async def tools(self) -> list[dict[str, Any]]:
        from deployments.tools_api import list_tools

        return await list_tools(self.core)

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        from deployments.tools_api import TOOL

        try:
            return await self.core.call(TOOL, name, "invoke", [arguments])
        except Exception as exc:
            raise tool_error(exc) from None

    async def providers(self) -> dict[str, Any]:
        return await self._read(self.observability.list_providers)

    async def stats(self) -> dict[str, Any]:
        return await self._read(self.observability.get_stats)

    async def _read(self, method: Any) -> dict[str, Any]:
        try:
            return await method()
        except Exception as exc:
            raise tool_error(exc) from None


def tool_error(exc: BaseException) -> Exception:
    """A registry error as MCP sees it, worded as ``POST /v1/tools/{name}`` words it."""
    from deployments.tools_api import bare_path
    from providers.errors import ProviderNotFoundError, RegistryError

    cause = getattr(exc, "cause", None)  # a Ray-wrapped error carries the registry's as `cause`
    err = bare_path(cause if isinstance(cause, BaseException) else exc)  # `memories[0].content`, as sent
    if isinstance(err, ProviderNotFoundError):  # raised by the route lookup: the tool itself is unknown
        return UnknownTool(str(err))
    if isinstance(err, RegistryError):
        return ToolFailed(str(err))  # scrubbed of the providers' secrets by the core
    logger.exception("unexpected error in an MCP tool call")
    return ToolFailed(f"registry error: {type(err).__name__}")


# -- /mcp over HTTP ------------------------------------------------------------------------


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def mcp_denied(authorization: str, token_env: str, admin_token_env: str | None) -> tuple[int, str, str] | None:
    """None when ``/mcp`` may be used; else ``(status, message, code)``.

    The token is read from the environment at each request, as the admin
    token is (`admin_api.admin_denied`): secrets reach replicas through the
    environment of the process that starts Ray, never runtime_env. No MCP
    token: ``/mcp`` is open, like ``/v1/tools`` (the default bind is
    127.0.0.1). The two tokens are separate secrets: the admin token opens no
    ``/mcp`` and the MCP token no ``/v1/admin``; one value set as both would
    make the MCP token an admin token, so ``/mcp`` then refuses everything.
    """
    expected = os.environ.get(token_env, "")
    if not expected:
        return None
    if admin_token_env and hmac.compare_digest(_digest(expected), _digest(os.environ.get(admin_token_env, ""))):
        return (403, f"/mcp is disabled: {token_env} holds the admin token; the MCP token must be a "
                     "secret of its own", "mcp_misconfigured")
    scheme, _, given = authorization.strip().partition(" ")
    # compare_digest always, over SHA-256 digests (equal lengths): the time taken says nothing of the token.
    matches = hmac.compare_digest(_digest(given.strip()), _digest(expected))
    if scheme.lower() != "bearer" or not matches:
        return (401, "/mcp needs the MCP token (Authorization: Bearer <token>)", "unauthorized")
    return None


def security_settings(http_host: str) -> Any:
    """DNS-rebinding protection (Host and Origin checked) while the registry answers this machine
    only: a web page must not reach a local MCP server through the browser."""
    from mcp.server.transport_security import TransportSecuritySettings

    if http_host not in LOOPBACK:
        return None  # bound wider on purpose: any Host; the token is what guards /mcp then
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])


class McpHttpApp:
    """The ASGI app at ``/mcp``: the bearer check, then the SDK's stateless session manager.

    The manager needs ``run()`` (a task group) before its first request. The
    router's FastAPI lifespan does not reach a mounted route, so it is started
    here, on the first request, in the loop that serves requests (Serve runs
    a replica's user code on a loop of its own).
    """

    def __init__(self, backend: Backend, *, token_env: str, admin_token_env: str | None = None,
                 http_host: str = "127.0.0.1", max_request_bytes: int = 4 * 2**20) -> None:
        # The SDK is imported on the first POST, not here: every router replica builds this app,
        # and importing mcp costs each about 23 MB RSS (measured) that a registry nobody
        # reaches over MCP should not pay (issue 17's memory target).
        self.backend, self.http_host = backend, http_host
        self.token_env, self.admin_token_env = token_env, admin_token_env
        self.max_request_bytes = max_request_bytes
        self._manager: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        denied = mcp_denied(headers.get("authorization", ""), self.token_env, self.admin_token_env)
        if denied is not None:
            from deployments.http_api import error_response

            status, message, code = denied
            response = error_response(status, message, None, code)
            if status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="mcp"'
            await response(scope, receive, send)
            return
        if scope["method"] == "GET":
            # The SDK would open a standalone SSE stream, which a stateless server never writes to
            # and never ends (seen: the request hung until the client gave up, holding a slot of the
            # replica). The specification's other answer to that GET: 405, no stream here.
            from deployments.http_api import error_response

            response = error_response(405, "/mcp is stateless: no server-sent event stream; POST JSON-RPC",
                                      None, "method_not_allowed")
            response.headers["Allow"] = "POST"
            await response(scope, receive, send)
            return
        manager = await self._running()
        await manager.handle_request(scope, receive, send)

    async def _running(self) -> Any:
        if self._task is not None and not self._task.done():
            return self._manager
        async with self._lock:
            if self._task is None or self._task.done():  # never started, or its task group ended
                from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

                # A manager runs once (the SDK refuses a second run()): a new one each start.
                self._manager = StreamableHTTPSessionManager(
                    app=build_server(self.backend), stateless=True, json_response=True,
                    security_settings=security_settings(self.http_host),
                    max_request_body_size=self.max_request_bytes)
                started = asyncio.Event()
                self._task = asyncio.create_task(self._run(self._manager, started))
                waiter = asyncio.create_task(started.wait())
                await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if not started.is_set():
                    self._task.result()  # raises what stopped it
            return self._manager

    @staticmethod
    async def _run(manager: Any, started: asyncio.Event) -> None:
        async with manager.run():
            started.set()
            await asyncio.Event().wait()  # until the replica (or the test's server) stops

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def mount_mcp(app: Any, core: Any, observability: Any) -> None:
    """``/mcp`` on the router's app, unless ``registry.mcp.enabled`` is false."""
    from starlette.routing import Route

    from providers.registry.config import McpOptions

    settings = core.settings
    # getattr: the unit tests build the app with a bare settings object (no mcp block, no host).
    options = getattr(settings, "mcp", None) or McpOptions()
    if not options.enabled:
        return
    asgi = McpHttpApp(CoreBackend(core, observability), token_env=options.token_env,
                      admin_token_env=getattr(settings, "admin_token_env", None),
                      http_host=getattr(settings, "http_host", "127.0.0.1"),
                      max_request_bytes=settings.max_request_bytes)
    # A Route whose endpoint is an ASGI object (not a function) hands it the raw request, as the
    # SDK's own app does; a Mount would answer `/mcp` with a redirect to `/mcp/`.
    app.router.routes.append(Route("/mcp", endpoint=asgi))
