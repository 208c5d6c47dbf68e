"""Finding the processes a test started (a Ray instance in its own temp dir), so that
it stops exactly those and never another Ray instance on the machine."""

from __future__ import annotations

import os
from pathlib import Path


def processes_under(marker: str) -> list[int]:
    """Pids (not this process's) whose command line contains ``marker``, or that hold
    a file open whose path does.

    Ray rewrites its agents' command lines to a bare ``ray::DashboardAgent`` /
    ``ray::RuntimeEnvAgent``: found by the command line alone, they outlived
    tests/deploy's cluster (seen here: both still running minutes later). They
    keep their log files open under the temp dir, which finds them.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline or _holds_file_under(entry, marker):
            pids.append(int(entry.name))
    return pids


def _holds_file_under(proc: Path, marker: str) -> bool:
    try:
        for fd in (proc / "fd").iterdir():
            try:
                if marker in os.readlink(fd):
                    return True
            except OSError:
                continue
    except OSError:  # gone, or not ours to read
        return False
    return False


def stop_processes_under(marker: str, term_grace_s: float = 10.0, kill_wait_s: float = 60.0) -> list[int]:
    """SIGTERM every process under ``marker``, then SIGKILL what is left; the pids that
    survived both. Polls, not fixed sleeps: a busy machine takes longer to end processes,
    and only the deadline means they survived (`ray stop` would stop every Ray here)."""
    import signal
    import time

    for sig, wait_s in ((signal.SIGTERM, term_grace_s), (signal.SIGKILL, kill_wait_s)):
        for pid in processes_under(marker):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while processes_under(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
    return processes_under(marker)
