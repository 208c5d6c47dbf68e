"""The bearer rules of /mcp (`deployments.mcp_server.mcp_denied`), without Ray or HTTP.

The integration test (tests/integration/test_mcp.py) runs the same check behind a
real HTTP server with the SDK's client; these are the rules, one by one."""

from __future__ import annotations

import pytest

from deployments.mcp_server import mcp_denied

MCP_ENV, ADMIN_ENV = "UNIT_MCP_TOKEN", "UNIT_ADMIN_TOKEN"


@pytest.fixture
def tokens(monkeypatch):
    monkeypatch.setenv(MCP_ENV, "mcp-secret-one")
    monkeypatch.setenv(ADMIN_ENV, "admin-secret-two")
    return monkeypatch


def test_no_token_configured_leaves_mcp_open(monkeypatch):
    monkeypatch.delenv(MCP_ENV, raising=False)
    assert mcp_denied("", MCP_ENV, ADMIN_ENV) is None
    assert mcp_denied("Bearer anything", MCP_ENV, ADMIN_ENV) is None


def test_the_mcp_token_opens_mcp(tokens):
    assert mcp_denied("Bearer mcp-secret-one", MCP_ENV, ADMIN_ENV) is None
    assert mcp_denied("  bearer   mcp-secret-one ", MCP_ENV, ADMIN_ENV) is None  # scheme is case-insensitive


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer wrong", "Bearer admin-secret-two", "Basic mcp-secret-one",
                                    "mcp-secret-one", "Bearer mcp-secret-one2", "Bearer mcp-secret-on"])
def test_anything_else_is_401(tokens, header):
    status, message, code = mcp_denied(header, MCP_ENV, ADMIN_ENV)
    assert (status, code) == (401, "unauthorized")
    assert "mcp-secret-one" not in message and "admin-secret-two" not in message


def test_one_value_as_both_tokens_disables_mcp(tokens):
    tokens.setenv(MCP_ENV, "admin-secret-two")
    for header in ("Bearer admin-secret-two", "", "Bearer other"):
        status, message, code = mcp_denied(header, MCP_ENV, ADMIN_ENV)
        assert (status, code) == (403, "mcp_misconfigured")
        assert "admin-secret-two" not in message and MCP_ENV in message
