"""Where a start's time and memory go: the phases `make serve` prints when it is ready.

Providers start side by side, so their rows overlap: each row says when its
phase began (seconds since the command) and how long it took.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Phase:
    name: str
    start_s: float
    took_s: float


@dataclass
class StartupPhases:
    began: float = field(default_factory=time.monotonic)
    phases: list[Phase] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as one row; rows from several threads may overlap."""
        start = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self.phases.append(Phase(name, start - self.began, time.monotonic() - start))

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def table(self, memory: StackMemory | None = None) -> str:
        rows = sorted(self.phases, key=lambda p: p.start_s)
        width = max([len(p.name) for p in rows] + [len("phase")])
        lines = [f"  {'phase':<{width}}  {'start s':>7}  {'took s':>6}"]
        lines += [f"  {p.name:<{width}}  {p.start_s:7.1f}  {p.took_s:6.1f}" for p in rows]
        lines.append(f"  {'ready':<{width}}  {self.elapsed():7.1f}")
        head = "Startup"
        if memory is not None:
            head += (f" (serving stack, {memory.processes} processes: {memory.pss_bytes / 2**30:.2f} GiB PSS, "
                     f"{memory.rss_bytes / 2**30:.2f} GiB summed RSS)")
        return head + ":\n" + "\n".join(lines)


@dataclass
class StackMemory:
    """Memory of the processes of a serving stack.

    ``pss_bytes`` is what they take from the machine: each shared page (Ray's
    core library, Python, torch mapped by every replica) is divided among the
    processes that map it. ``rss_bytes`` counts a shared page once per
    process that maps it: an upper bound that grows with the process count.
    """
    rss_bytes: int
    pss_bytes: int
    processes: int
    by_kind: dict[str, int]  # RSS per kind of process


def process_kind(cmdline: list[str]) -> str:
    """A short name for one process of the stack: Ray's actor titles, or the program's name."""
    first = cmdline[0] if cmdline else "?"
    if first.startswith("ray::"):
        # ray::ServeReplica:registry--embeddings--minilm--v1:ProviderDeployment -> ServeReplica:registry--...
        return first[len("ray::"):].split(" ")[0]
    program = os.path.basename(first)
    if program.startswith("python") and len(cmdline) > 1:
        script = next((a for a in cmdline[1:] if not a.startswith("-")), "")
        return f"python {os.path.basename(script)}"
    return program


def stack_memory(root_pid: int | None = None, markers: tuple[str, ...] = ()) -> StackMemory:
    """RSS of a process and everything under it, plus processes whose command line holds a marker.

    A local Ray instance's GCS and raylet are children of the process that
    started it and its workers are the raylet's; servers that detach from
    their parent (an embedded database) are found by a marker (their data dir).
    """
    import psutil

    root = psutil.Process(root_pid or os.getpid())
    found = {root.pid: root}
    for child in root.children(recursive=True):
        found[child.pid] = child
    if markers:
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info.get("cmdline") or [])
            if any(m and m in cmd for m in markers):
                found[proc.pid] = proc
                for child in proc.children(recursive=True):  # a server's own workers name no data dir
                    found[child.pid] = child
    total, pss, by_kind = 0, 0, {}
    for proc in found.values():
        try:
            full = proc.memory_full_info()  # reads /proc/PID/smaps for PSS
            kind = process_kind(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += full.rss
        pss += getattr(full, "pss", full.rss)  # PSS is Linux's; elsewhere RSS stands in
        by_kind[kind] = by_kind.get(kind, 0) + full.rss
    return StackMemory(total, pss, len(found), dict(sorted(by_kind.items(), key=lambda kv: -kv[1])))
