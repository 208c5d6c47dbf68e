"""`make serve` refuses a taken HTTP port before starting anything."""

from __future__ import annotations

import socket

import pytest

from providers.errors import ConfigError
from serve_app.main import check_port_free


def test_a_taken_port_is_a_clear_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"registry.http_port: cannot listen on 127.0.0.1:{port}"):
            check_port_free("127.0.0.1", port)


def test_a_free_port_passes():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_port_free("127.0.0.1", port)
