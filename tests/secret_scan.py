"""Find configured secret values in what a test run produced: files, HTTP bodies, errors, logs.

A finding says where (``file:line``, or a recorded item and its line) and
which secret by its *label*, never by its value: the report of a leak must
not be a leak itself. `Recorder` scans things as they are produced (HTTP
response bodies, error messages, subprocess output, pytest's captured
sections) and keeps only findings; `scan_tree` scans files afterwards (Ray's
session directory, a database's log).

Used by the integration session (tests/integration/conftest.py installs the
recorders; test_zz_no_secret_in_logs.py scans at the end) and proven able to
find a planted secret by tests/unit/test_secret_scan.py.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

CHUNK = 1 << 20
# One HTTP body or output is scanned up to this size (the suite's largest
# answers, 128 embeddings as JSON, are about 2 MB).
MAX_RECORDED = 16 << 20
NL = b"\n"


@dataclass(frozen=True)
class Secret:
    label: str  # what a finding prints instead of the value
    value: str

    def forms(self) -> list[bytes]:
        """The value as it would appear in UTF-8 text, in a JSON string, in a URL."""
        out = [self.value.encode()]
        for other in (json.dumps(self.value)[1:-1], json.dumps(self.value, ensure_ascii=True)[1:-1],
                      quote(self.value, safe="")):
            if other.encode() not in out:
                out.append(other.encode())
        return [f for f in out if f]


def _masked(text: str, secrets: Iterable[Secret]) -> str:
    """``text`` (a path, a URL: what a finding prints) with any secret replaced by its label."""
    for s in secrets:
        for form in s.forms():
            text = text.replace(form.decode(errors="replace"), f"<{s.label}>")
    return text


def find_in_bytes(data: bytes | str, where: str, secrets: Iterable[Secret]) -> list[str]:
    """``where:line: label`` for every occurrence of every secret in ``data``."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    secrets = list(secrets)
    found = []
    for s in secrets:
        for form in s.forms():
            start = data.find(form)
            while start != -1:
                line = data.count(NL, 0, start) + 1
                found.append(f"{_masked(where, secrets)}:{line}: {s.label}")
                start = data.find(form, start + 1)
    return sorted(set(found))


def scan_file(path: Path, secrets: Iterable[Secret], shown_as: str | None = None) -> list[str]:
    """Stream ``path`` in chunks (logs can be large), overlapping so no occurrence is split."""
    secrets = list(secrets)
    forms = [(s, f) for s in secrets for f in s.forms()]
    if not forms:
        return []
    overlap = max(len(f) for _, f in forms) - 1
    found: set[str] = set()
    name = _masked(shown_as or str(path), secrets)
    lines_before = 0  # newlines before the start of `window`
    tail = b""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            window = tail + block
            for s, form in forms:
                start = window.find(form)
                while start != -1:
                    line = lines_before + window.count(NL, 0, start) + 1
                    found.add(f"{name}:{line}: {s.label}")
                    start = window.find(form, start + 1)
            if not block:
                break
            keep = min(overlap, len(window))
            cut = len(window) - keep
            lines_before += window.count(NL, 0, cut)
            tail = window[cut:]
    return sorted(found)


def scan_tree(root: Path, secrets: Iterable[Secret], accept: Callable[[Path], bool] = lambda p: True) -> tuple[list[str], int]:
    """Findings in every regular file under ``root`` (links and sockets skipped), and how many files were read."""
    secrets = list(secrets)
    found, files = [], 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            path = Path(dirpath) / n
            if path.is_symlink() or not path.is_file() or not accept(path):
                continue
            try:
                found += scan_file(path, secrets, shown_as=str(path.relative_to(root)))
                files += 1
            except OSError:  # a file Ray removed meanwhile
                continue
    return found, files


class Recorder:
    """Scans what tests produce as it is produced; keeps findings and a count, not the data."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.secrets = list(secrets)
        self.findings: list[str] = []
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add_secret(self, secret: Secret) -> None:
        if secret.value and secret not in self.secrets:
            self.secrets.append(secret)

    def record(self, kind: str, where: str, data: bytes | str | None) -> None:
        if data is None:
            return
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        found = find_in_bytes(data[:MAX_RECORDED], f"{kind} {where}", self.secrets)
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.findings += found


def install_http_recorder(recorder: Recorder) -> Callable[[], None]:
    """Record every HTTP response body read by httpx (sync and async) or requests in this process.

    Patched where bodies are decoded (``iter_bytes`` / ``aiter_bytes``, which
    ``read()`` and streaming both go through; requests: ``iter_content``), so
    streamed and compressed answers are seen as the caller sees them.
    Returns the function that undoes it.
    """
    undo: list[Callable[[], None]] = []

    import httpx

    def where(response: httpx.Response) -> str:
        request = getattr(response, "_request", None)
        return f"{request.method} {request.url.path}" if request is not None else "(no request)"

    orig_iter, orig_aiter = httpx.Response.iter_bytes, httpx.Response.aiter_bytes

    def iter_bytes(self: httpx.Response, chunk_size: int | None = None):  # type: ignore[no-untyped-def]
        if hasattr(self, "_content"):  # already read (and recorded): a replay
            yield from orig_iter(self, chunk_size)
            return
        seen = bytearray()
        try:
            for chunk in orig_iter(self, chunk_size):
                if len(seen) < MAX_RECORDED:
                    seen += chunk
                yield chunk
        finally:
            recorder.record("HTTP response", where(self), bytes(seen))

    async def aiter_bytes(self: httpx.Response, chunk_size: int | None = None):  # type: ignore[no-untyped-def]
        if hasattr(self, "_content"):
            async for chunk in orig_aiter(self, chunk_size):
                yield chunk
            return
        seen = bytearray()
        try:
            async for chunk in orig_aiter(self, chunk_size):
                if len(seen) < MAX_RECORDED:
                    seen += chunk
                yield chunk
        finally:
            recorder.record("HTTP response", where(self), bytes(seen))

    httpx.Response.iter_bytes, httpx.Response.aiter_bytes = iter_bytes, aiter_bytes
    undo.append(lambda: (setattr(httpx.Response, "iter_bytes", orig_iter),
                         setattr(httpx.Response, "aiter_bytes", orig_aiter)))

    try:
        import requests
    except ImportError:  # requests only comes with schemathesis
        requests = None
    if requests is not None:
        orig_content = requests.models.Response.iter_content

        def iter_content(self, chunk_size=1, decode_unicode=False):  # type: ignore[no-untyped-def]
            seen = bytearray()
            try:
                for chunk in orig_content(self, chunk_size, decode_unicode):
                    if len(seen) < MAX_RECORDED:
                        seen += chunk.encode() if isinstance(chunk, str) else chunk
                    yield chunk
            finally:
                request = self.request
                recorder.record("HTTP response", f"{request.method} {request.path_url}" if request else "?", bytes(seen))

        requests.models.Response.iter_content = iter_content
        undo.append(lambda: setattr(requests.models.Response, "iter_content", orig_content))

    def uninstall() -> None:
        for step in reversed(undo):
            step()

    return uninstall
