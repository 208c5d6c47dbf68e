"""Runs last (file order): no configured secret appears in any log Ray wrote this session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.integration

# Secrets the other integration tests configure (test_python_api registers a
# provider with this api_key; the admin token reaches the router's env).
SECRETS = [ADMIN_TOKEN, "sk-this-must-never-be-shown-1234"]


def test_no_secret_in_ray_logs(registry):
    import ray

    session = Path(ray._private.worker._global_node.get_session_dir_path())
    files = [p for p in session.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000]
    assert any(p.suffix in (".log", ".out", ".err") for p in files), "no logs found to scan"
    leaks = []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        leaks += [f"{path.relative_to(session)}: {s[:6]}..." for s in SECRETS if s.encode() in data]
    assert leaks == []
