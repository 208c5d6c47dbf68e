"""A free local TCP port, for the tests and benchmarks that start servers."""

from __future__ import annotations

import socket
from collections.abc import Callable


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on at the moment of the call."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_in(low: int, high: int, host: str = "0.0.0.0", tries: int = 200) -> int:
    """A port in [low, high) that ``host`` can bind at the moment of the call, drawn at random.

    For a port bound seconds later by another process: outside the kernel's ephemeral
    range, the one `free_port` draws from, no outgoing connection or port-0 listener
    takes it in between.
    """
    import random

    for port in random.sample(range(low, high), min(tries, high - low)):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {low}-{high - 1} after {tries} tries")


def free_ports(n: int, draw: Callable[[], int] = free_port) -> list[int]:
    """``n`` different ports from ``draw``: each draw only knows that its port is free now,
    so two draws can give the same one (CI, 2026-12-06: 33313 twice from `free_port`)."""
    ports: list[int] = []
    while len(ports) < n:
        if (port := draw()) not in ports:
            ports.append(port)
    return ports
