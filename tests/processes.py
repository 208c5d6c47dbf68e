"""Finding the processes a test started (a Ray instance in its own temp dir), so that
it stops exactly those and never another Ray instance on the machine."""

from __future__ import annotations

import os
from pathlib import Path


def processes_under(marker: str) -> list[int]:
    """Pids (not this process's) whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline and int(entry.name) != os.getpid():
                pids.append(int(entry.name))
    return pids
