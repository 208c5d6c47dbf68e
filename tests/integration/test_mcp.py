"""MCP end to end: the SDK's own client (`ClientSession`) against the session's registry,
over Streamable HTTP at ``/mcp`` and over stdio through ``provider-registry mcp``.

Real parts only: the router's ``/mcp``, the stdio command as a host launches it,
real MiniLM and PostgreSQL behind the memory tools, a provider made to fail by
its config. Tools registered here are deleted here (the shared registry is left
as found). Every wait polls with a deadline; every request has a read timeout.

The MCP token cannot be configured on the shared registry (it is read from the
environment Ray started with), so the bearer check is tested on the same
`McpHttpApp` the router mounts, served by uvicorn in this process over the
stdio command's `HttpBackend` (the registry's HTTP API): a real HTTP server, the
real check, the SDK's client, no second Ray application.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from serve_app import ProviderType, provider_registry
from tests.integration import secret_surface
from tests.integration.conftest import ADMIN_TOKEN, ADMIN_TOKEN_ENV, PG_PASSWORD, SAMPLE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 120  # deadline of any one wait; an idle machine needs a second or two
README_ADDRESS = "http://127.0.0.1:8000"  # the README's address, replaced by the session's (as test_readme_examples)
MCP_TOKEN_ENV = "TEST_REGISTRY_MCP_TOKEN"
MCP_TOKEN = "mcp-" + "5d1e8a0c3f7b9e2a6c4d"
secret_surface.add("MCP_TOKEN", MCP_TOKEN)

MEMORIES = [  # (content, a paraphrase that must find it)
    ("Marta's violin lessons moved from Tuesday to Thursday evenings.",
     "When does Marta have her violin lesson now?"),
    ("The spare key to the garden shed is hidden under the blue flowerpot.",
     "Where is the key for the garden shed kept?"),
    ("Priya runs the quarterly budget review on the fourteenth of March.",
     "Who leads the quarterly budget review, and when?"),
]


@asynccontextmanager
async def http_session(url: str, token: str | None = None):
    import httpx2  # the SDK's HTTP client library

    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(WAIT_S)) as client:
        async with streamable_http_client(url.rstrip("/") + "/mcp", http_client=client) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=WAIT_S) as session:
                await session.initialize()
                yield session


def stdio_params(registry, *args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable,
                                 args=["-m", "serve_app", "mcp", "--url", registry["http"], "--no-start", *args],
                                 cwd=str(ROOT), env={"PYTHONPATH": str(ROOT), **(env or {})})


@asynccontextmanager
async def stdio_session(params: StdioServerParameters, errlog, notifications: list | None = None):
    async def on_message(message) -> None:
        if notifications is not None and isinstance(message, types.ToolListChangedNotification):
            notifications.append(message)

    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=WAIT_S, message_handler=on_message) as session:
            await session.initialize()
            yield session


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def tool_names(session: ClientSession) -> set[str]:
    return {t.name for t in (await session.list_tools()).tools}


async def wait_until(predicate, what: str):
    """Poll ``predicate`` (async, returns a truthy value when done) until WAIT_S passes."""
    end = time.monotonic() + WAIT_S
    while not (value := await predicate()):
        assert time.monotonic() < end, f"{what}: not within {WAIT_S} s"
        await asyncio.sleep(0.3)
    return value


async def store_and_find(session: ClientSession, tag: str) -> None:
    """Three memories stored with memory.store, each found by a paraphrase with memory.search."""
    memories = [{"id": f"{tag}-{i}", "content": c} for i, (c, _) in enumerate(MEMORIES)]
    stored = await session.call_tool("memory.store", {"memories": memories, "source": "mcp-test"})
    assert not stored.is_error, text_of(stored)
    assert stored.structured_content["stored"] == 3
    assert json.loads(text_of(stored))["ids"] == [m["id"] for m in memories]  # text and structure agree
    for i, (_, paraphrase) in enumerate(MEMORIES):
        found = await session.call_tool("memory.search", {"query": paraphrase, "top_k": 3})
        assert not found.is_error, text_of(found)
        hits = found.structured_content["results"]
        assert f"{tag}-{i}" in [h["id"] for h in hits], (paraphrase, hits)
        assert next(h for h in hits if h["id"] == f"{tag}-{i}")["provenance"]["source"] == "mcp-test"


# -- Streamable HTTP at /mcp -----------------------------------------------------------------


async def test_http_lists_the_tools_of_the_route_table(registry):
    listing = httpx.get(registry["http"] + "/v1/tools", timeout=60).json()["tools"]
    expected = {t["name"]: t for t in listing if "error" not in t}
    with anyio.fail_after(WAIT_S):
        async with http_session(registry["http"]) as session:
            assert session.initialize_result.capabilities.tools.list_changed is False  # stateless: no stream
            tools = {t.name: t for t in (await session.list_tools()).tools}
    assert {"memory.store", "memory.search"} <= set(tools)
    assert set(tools) == set(expected)
    for name, tool in tools.items():
        assert tool.input_schema == expected[name]["input_schema"]
        assert tool.description == expected[name]["description"]
    assert tools["memory.search"].input_schema["required"] == ["query"]


async def test_http_stores_three_memories_and_finds_them(registry):
    with anyio.fail_after(WAIT_S * 2):
        async with http_session(registry["http"]) as session:
            await store_and_find(session, f"mcp-http-{uuid.uuid4().hex[:8]}")


async def test_http_serves_the_2026_protocol_too(registry):
    """The SDK's high-level `Client` negotiates the newest protocol (2026-07-28: no handshake, each
    request carries its own envelope); /mcp answers it like the handshake era."""
    from mcp.client import Client

    with anyio.fail_after(WAIT_S):
        async with Client(registry["http"] + "/mcp", read_timeout_seconds=WAIT_S) as client:
            assert client.session.protocol_version == "2026-07-28"
            assert {"memory.store", "memory.search"} <= {t.name for t in (await client.list_tools()).tools}
            found = await client.call_tool("memory.search", {"query": "cats at the lighthouse", "top_k": 1})
            assert not found.is_error and found.structured_content["results"]
            bad = await client.call_tool("memory.search", {"query": ""})
            assert bad.is_error and text_of(bad).startswith("query: ")


@pytest.mark.parametrize("name, arguments, path", [
    ("memory.store", {"memories": [{"content": 5}]}, "memories[0].content"),
    ("memory.store", {"memories": [{"content": "a", "extra": 1}]}, "memories[0].extra"),
    ("memory.search", {}, "query"),
    ("memory.search", {"query": "x", "top_k": 0}, "top_k"),
])
async def test_http_bad_argument_is_a_tool_error_naming_the_path(registry, name, arguments, path):
    with anyio.fail_after(WAIT_S):
        async with http_session(registry["http"]) as session:
            result = await session.call_tool(name, arguments)
            assert result.is_error and text_of(result).startswith(f"{path}: "), text_of(result)
            assert "Traceback" not in text_of(result)
            assert "memory.search" in await tool_names(session)  # the session goes on


async def test_http_unknown_tool_is_the_protocols_invalid_params(registry):
    with anyio.fail_after(WAIT_S):
        async with http_session(registry["http"]) as session:
            with pytest.raises(MCPError) as err:
                await session.call_tool("memory.nope", {"query": "x"})
            assert err.value.code == types.INVALID_PARAMS
            assert "memory.nope" in err.value.message and "memory.search" in err.value.message  # names the known
            assert "memory.search" in await tool_names(session)


async def test_http_resources_show_the_table_redacted_and_the_stats(registry):
    with anyio.fail_after(WAIT_S):
        async with http_session(registry["http"]) as session:
            uris = {str(r.uri) for r in (await session.list_resources()).resources}
            assert uris == {"registry://providers", "registry://stats"}
            table = (await session.read_resource("registry://providers")).contents[0]
            stats = (await session.read_resource("registry://stats")).contents[0]
            with pytest.raises(MCPError) as err:
                await session.read_resource("registry://secrets")
    assert table.mime_type == "application/json"
    providers = json.loads(table.text)
    assert {"memory.store", "memory.search"} <= set(providers["tools"])
    assert providers["vector_stores"]["memories"]["config"]["password"] != PG_PASSWORD  # redacted
    assert PG_PASSWORD not in table.text and ADMIN_TOKEN not in table.text
    assert "usage_stats" in json.loads(stats.text)
    assert err.value.code == types.INVALID_PARAMS


def test_http_refuses_a_foreign_origin_or_host_a_form_and_a_stream(registry):
    """The SDK's transport checks, kept on: a web page must not reach a local MCP server."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    ok = httpx.post(registry["http"] + "/mcp", json=body, headers=accept, timeout=60)
    assert ok.status_code == 200 and "memory.search" in ok.text
    form = httpx.post(registry["http"] + "/mcp", content=json.dumps(body),
                      headers={**accept, "Content-Type": "text/plain"}, timeout=60)  # a form a page may send
    assert form.status_code == 400
    foreign = httpx.post(registry["http"] + "/mcp", json=body, headers={**accept, "Origin": "http://evil.example"},
                         timeout=60)
    assert foreign.status_code == 403
    stream = httpx.get(registry["http"] + "/mcp", headers={"Accept": "text/event-stream"}, timeout=60)
    assert stream.status_code == 405 and stream.headers["allow"] == "POST"  # stateless: no stream to hold open
    rebound = httpx.post(registry["http"] + "/mcp", json=body, headers={**accept, "Host": "evil.example:8000"},
                         timeout=60)
    assert rebound.status_code == 421


# -- a provider failure, with and without a fallback; a tool deleted at run time ------------------


@pytest.fixture(scope="module")
async def failing_tool(registry):
    """``mcp.failing``: memory.search over an embedder that raises on every call."""
    await provider_registry.register_provider(ProviderType.EMBEDDING, "mcp_flaky", f"{SAMPLE}.HashEmbedder",
                                              {"label": "mcp_flaky", "fail": True}, deployment={"num_cpus": 0.1})
    try:
        await provider_registry.register_provider(
            ProviderType.TOOL, "mcp.failing", "providers.tools.memory.MemorySearchTool",
            {"vector_store": "journal", "embedder": "mcp_flaky"}, deployment={"num_cpus": 0.1})
        yield "mcp.failing"
    finally:
        names = (await provider_registry.list_providers(ProviderType.TOOL)).get("tools", {})
        if "mcp.failing" in names:
            await provider_registry.delete_provider(ProviderType.TOOL, "mcp.failing")
        await provider_registry.delete_provider(ProviderType.EMBEDDING, "mcp_flaky")


async def test_provider_failure_is_an_error_result_and_a_fallback_serves(registry, failing_tool, tmp_path):
    with anyio.fail_after(WAIT_S * 2), open(tmp_path / "stderr", "w") as errlog:
        async with http_session(registry["http"]) as http, stdio_session(stdio_params(registry), errlog) as stdio:
            for session in (http, stdio):
                assert failing_tool in await tool_names(session)
                failed = await session.call_tool(failing_tool, {"query": "anything"})
                assert failed.is_error and "fails on purpose" in text_of(failed), text_of(failed)
            await provider_registry.set_fallback_provider(ProviderType.TOOL, failing_tool, "memory.search")
            try:
                for session in (http, stdio):
                    served = await session.call_tool(failing_tool, {"query": "garden shed key", "top_k": 2})
                    assert not served.is_error, text_of(served)
                    assert served.structured_content["results"][0]["provenance"]["vector_store"] == "journal"
                    refused = await session.call_tool(failing_tool, {"query": 7})  # checked before the chain
                    assert refused.is_error and text_of(refused).startswith("query: ")
            finally:
                await provider_registry.set_fallback_provider(ProviderType.TOOL, failing_tool, [])


async def test_a_tool_deleted_at_run_time_leaves_the_list(registry, failing_tool, tmp_path):
    """Over stdio the command sends notifications/tools/list_changed; over stateless HTTP a client lists again."""
    changed: list = []
    with anyio.fail_after(WAIT_S * 2), open(tmp_path / "stderr", "w") as errlog:
        async with http_session(registry["http"]) as http, \
                stdio_session(stdio_params(registry), errlog, changed) as stdio:
            assert stdio.initialize_result.capabilities.tools.list_changed is True
            assert failing_tool in await tool_names(stdio)  # the host has seen the list: changes are now news
            assert failing_tool in await tool_names(http)
            await provider_registry.delete_provider(ProviderType.TOOL, failing_tool)
            await wait_until(lambda: _truthy(changed), "notifications/tools/list_changed")
            assert failing_tool not in await tool_names(stdio)
            await wait_until(lambda: _absent(http, failing_tool), "the deleted tool leaving /mcp's list")
            with pytest.raises(MCPError) as err:
                await stdio.call_tool(failing_tool, {"query": "x"})
            assert err.value.code == types.INVALID_PARAMS


async def _truthy(items: list) -> bool:
    return bool(items)


async def _absent(session: ClientSession, name: str) -> bool:
    return name not in await tool_names(session)


# -- stdio: provider-registry mcp --------------------------------------------------------------


async def test_stdio_stores_three_memories_and_finds_them(registry, tmp_path):
    with anyio.fail_after(WAIT_S * 2), open(tmp_path / "stderr", "w") as errlog:
        async with stdio_session(stdio_params(registry), errlog) as session:
            await store_and_find(session, f"mcp-stdio-{uuid.uuid4().hex[:8]}")
            bad = await session.call_tool("memory.store", {"memories": [{"content": 5}]})
            assert bad.is_error and text_of(bad).startswith("memories[0].content: "), text_of(bad)
            with pytest.raises(MCPError) as err:
                await session.call_tool("memory.nope", {})
            assert err.value.code == types.INVALID_PARAMS and "memory.search" in err.value.message
            table = (await session.read_resource("registry://providers")).contents[0].text
            assert PG_PASSWORD not in table and "memory.store" in table
    said = (tmp_path / "stderr").read_text()
    assert f"using the running registry at {registry['http']} (HTTP)" in said, said


def desktop_config() -> dict:
    """The README's desktop-client config (the JSON block naming mcpServers), at the session's address."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```json\n(.*?)\n```", text, re.S) if '"mcpServers"' in b]
    assert len(blocks) == 1, f"the README has {len(blocks)} JSON blocks with mcpServers"
    return json.loads(blocks[0])


async def test_the_readme_desktop_config_works_as_written(registry, tmp_path):
    entry = desktop_config()["mcpServers"]["provider-registry"]
    assert entry["command"] == "provider-registry" and entry["args"][0] == "mcp"
    env = {k: v.replace(README_ADDRESS, registry["http"]) for k, v in entry.get("env", {}).items()}
    # The host runs the command as found on its PATH: the venv's bin, as the README says.
    env["PATH"] = os.pathsep.join([str(ROOT / ".venv" / "bin"), os.environ.get("PATH", "")])
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env)
    with anyio.fail_after(WAIT_S), open(tmp_path / "stderr", "w") as errlog:
        async with stdio_session(params, errlog) as session:
            assert {"memory.store", "memory.search"} <= await tool_names(session)
            found = await session.call_tool("memory.search", {"query": "lighthouse cats", "top_k": 1})
            assert not found.is_error, text_of(found)
    assert f"using the running registry at {registry['http']}" in (tmp_path / "stderr").read_text()


# -- the MCP token ---------------------------------------------------------------------------------


@asynccontextmanager
async def token_guarded_mcp(registry):
    """The router's `McpHttpApp` with ``registry.mcp.token_env`` set, served by uvicorn in this process."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route

    from deployments.mcp_server import McpHttpApp
    from providers.net import free_port
    from serve_app.mcp_command import HttpBackend

    backend = HttpBackend(registry["http"], timeout_s=WAIT_S)
    asgi = McpHttpApp(backend, token_env=MCP_TOKEN_ENV, admin_token_env=ADMIN_TOKEN_ENV)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/mcp", endpoint=asgi)]), host="127.0.0.1",
                                           port=port, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: _started(server, serving), "uvicorn serving")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, WAIT_S)
        await asyncio.wait_for(asyncio.gather(asgi.aclose(), backend.aclose()), WAIT_S)


async def _started(server, task) -> bool:
    if task.done():
        task.result()  # uvicorn stopped: say why
    return server.started


async def test_mcp_token_required_when_configured_and_not_the_admin_token(registry, monkeypatch):
    monkeypatch.setenv(MCP_TOKEN_ENV, MCP_TOKEN)
    assert os.environ[ADMIN_TOKEN_ENV] == ADMIN_TOKEN  # the session's admin token, a different secret
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    async with token_guarded_mcp(registry) as url:
        async with httpx.AsyncClient(timeout=WAIT_S) as client:
            for auth in (None, "Bearer wrong-token", f"Bearer {ADMIN_TOKEN}", f"Basic {MCP_TOKEN}"):
                r = await client.post(url + "/mcp", json=body, headers={**accept, **({"Authorization": auth}
                                                                                      if auth else {})})
                assert r.status_code == 401, (auth and auth.split()[0], r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert r.json()["error"]["code"] == "unauthorized"
                assert MCP_TOKEN not in r.text
            with anyio.fail_after(WAIT_S):
                with pytest.raises(Exception):  # noqa: B017 (the SDK surfaces the 401 as its own error)
                    async with http_session(url, token=ADMIN_TOKEN):
                        pass
                async with http_session(url, token=MCP_TOKEN) as session:
                    assert "memory.search" in await tool_names(session)
            # ... and the MCP token opens no admin endpoint of the registry.
            r = await client.post(registry["http"] + "/v1/admin/monitoring", json={"enabled": True},
                                  headers={"Authorization": f"Bearer {MCP_TOKEN}"})
            assert r.status_code == 401, r.text
            # One value set as both tokens would make the MCP token an admin token: /mcp refuses.
            monkeypatch.setenv(MCP_TOKEN_ENV, ADMIN_TOKEN)
            r = await client.post(url + "/mcp", json=body, headers={**accept, "Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert r.status_code == 403 and r.json()["error"]["code"] == "mcp_misconfigured", r.text
            assert ADMIN_TOKEN not in r.text
