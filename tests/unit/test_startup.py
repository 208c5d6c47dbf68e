"""The startup table `make serve` prints, and the memory figure in it, on real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

from serve_app.startup import StartupPhases, process_kind, stack_memory


def test_phases_are_listed_by_start_and_overlapping_ones_keep_their_own_times():
    phases = StartupPhases()
    with phases.phase("Ray"):
        time.sleep(0.02)
    ready = threading.Event()

    def provider(name):
        with phases.phase(name):
            ready.wait(5)

    threads = [threading.Thread(target=provider, args=(n,)) for n in ("embeddings/minilm", "tools/memory.store")]
    for t in threads:
        t.start()
    ready.set()
    for t in threads:
        t.join()
    table = phases.table()
    lines = table.splitlines()
    assert lines[0] == "Startup:"
    names = [ln.split("  ")[1].strip() for ln in lines[2:-1]]
    assert names[0] == "Ray" and set(names[1:]) == {"embeddings/minilm", "tools/memory.store"}
    ray_row = next(p for p in phases.phases if p.name == "Ray")
    assert ray_row.took_s >= 0.02
    assert lines[-1].split()[0] == "ready" and phases.elapsed() >= ray_row.took_s


def test_process_kinds_name_ray_actors_and_scripts():
    assert process_kind(["ray::ServeReplica:registry:RegistryRouter"]) == "ServeReplica:registry:RegistryRouter"
    assert process_kind(["/venv/bin/python", "-u", "/x/ray/dashboard/dashboard.py", "--port=1"]) == "python dashboard.py"
    assert process_kind(["/usr/lib/postgresql/bin/postgres", "-D", "/d"]) == "postgres"
    assert process_kind([]) == "?"


def test_stack_memory_counts_children_and_detached_servers_by_marker():
    marker = f"detached-{uuid.uuid4().hex}"
    sleeper = "import time; time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", sleeper])
    # A detached server, as an embedded database is: its parent shell exits at once, so
    # it is nobody's descendant here; only the marker in its command line finds it.
    out = subprocess.run(["sh", "-c", f"{sys.executable} -c '{sleeper}' {marker} >/dev/null 2>&1 & echo $!"],
                         capture_output=True, text=True, check=True)
    detached = int(out.stdout.strip())
    try:
        without = stack_memory()
        with_marker = stack_memory(markers=(marker,))
    finally:
        child.kill()
        child.wait()
        os.kill(detached, signal.SIGKILL)
    assert without.processes >= 2  # this process and its child
    assert with_marker.processes == without.processes + 1
    assert with_marker.rss_bytes > without.rss_bytes
    assert 0 < with_marker.pss_bytes <= with_marker.rss_bytes
    assert sum(with_marker.by_kind.values()) == with_marker.rss_bytes
