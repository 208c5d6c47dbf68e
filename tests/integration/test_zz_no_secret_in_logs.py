"""Runs last (RUN_LAST, see conftest): no configured secret appears in anything the session produced.

Scanned: every file of Ray's session directory (every process's log, Serve's
logs, runtime_env logs), the embedded PostgreSQL's log, and what
tests/integration/secret_surface.py recorded as it happened: every HTTP
response body, every Python API answer and error, every CLI run's output,
and pytest's captured output, log lines and failures of every test. The
secrets: the admin token, the memories store's password, Ray's auth token,
and every secret-looking config value a test sent (learned as it was sent).
A leak fails listing ``where:line: <label>``, never the value.
tests/unit/test_secret_scan.py proves the scanner finds a planted secret.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import secret_surface
from tests.secret_scan import scan_tree

pytestmark = pytest.mark.integration
RUN_LAST = True


def _pg_log(path: Path) -> bool:
    return "log" in path.parts or path.suffix == ".log"


def test_no_secret_in_any_log_response_or_error(registry, pg_data_dir):
    import ray

    recorder = secret_surface.RECORDER
    labels = {s.label for s in recorder.secrets}
    assert {"ADMIN_TOKEN", "PG_PASSWORD"} <= labels
    assert recorder.counts.get("HTTP response", 0) > 0 and recorder.counts.get("Python API answer", 0) > 0, \
        f"nothing was recorded ({recorder.counts}): the recorders are not installed"

    session = Path(ray._private.worker._global_node.get_session_dir_path())
    ray_found, ray_files = scan_tree(session, recorder.secrets)
    assert any(session.glob("logs/serve/*.log")) and ray_files > 10, "no Ray logs found to scan"
    pg_found, _ = scan_tree(Path(pg_data_dir), recorder.secrets, accept=_pg_log)

    leaks = [f"ray session {f}" for f in ray_found] + [f"embedded PostgreSQL {f}" for f in pg_found] \
        + recorder.findings
    scanned = (f"{ray_files} Ray files, {len(recorder.secrets)} secrets ({', '.join(sorted(labels))}), "
               f"recorded: {recorder.counts}")
    assert not leaks, f"secrets found ({scanned}):\n" + "\n".join(sorted(set(leaks)))
