"""The secret scanner (tests/secret_scan.py) finds a planted secret wherever it may hide.

The integration session's final test trusts this scanner to say "no leak";
these tests plant secrets on purpose and prove it finds them, with the right
file:line, without ever printing the value.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests import secret_scan
from tests.secret_scan import Recorder, Secret, find_in_bytes, install_http_recorder, scan_file, scan_tree

TOKEN = Secret("ADMIN_TOKEN", "tok-" + "0123456789abcdef")
QUOTED = Secret("QUOTED", 'pw"with/slash' + "-42")


def assert_no_value(findings: list[str], *secrets: Secret) -> None:
    text = "\n".join(findings)
    for s in secrets:
        for form in s.forms():
            assert form.decode() not in text


def test_finds_every_occurrence_with_its_line_and_label_only():
    data = f"line one\nline two {TOKEN.value}\nthree\n{TOKEN.value} and {TOKEN.value}\n"
    found = find_in_bytes(data, "somewhere", [TOKEN])
    assert found == ["somewhere:2: ADMIN_TOKEN", "somewhere:4: ADMIN_TOKEN"]
    assert_no_value(found, TOKEN)


def test_finds_the_json_and_url_encoded_forms():
    import json
    from urllib.parse import quote

    body = json.dumps({"error": {"message": QUOTED.value}}) + "\n" + quote(QUOTED.value, safe="")
    assert QUOTED.value not in body  # neither form is the raw value
    assert find_in_bytes(body, "body", [QUOTED]) == ["body:1: QUOTED", "body:2: QUOTED"]


def test_clean_text_has_no_findings():
    assert find_in_bytes("tok-0123456789abcde (one short)", "x", [TOKEN]) == []


def test_a_secret_in_the_location_is_masked_too():
    found = find_in_bytes(TOKEN.value, f"GET /v1/x?token={TOKEN.value}", [TOKEN])
    assert found == ["GET /v1/x?token=<ADMIN_TOKEN>:1: ADMIN_TOKEN"]


def test_file_scan_across_chunk_boundaries(tmp_path, monkeypatch):
    """Chunks of 7 bytes split the 20-character secret every time; each occurrence is still found."""
    monkeypatch.setattr(secret_scan, "CHUNK", 7)
    lines = ["x" * n for n in range(1, 30)]
    lines[4] += TOKEN.value
    lines[17] = "ab" + TOKEN.value + "cd"
    lines[28] = TOKEN.value
    path = tmp_path / "ray.log"
    path.write_text("\n".join(lines))
    assert scan_file(path, [TOKEN]) == [f"{path}:18: ADMIN_TOKEN", f"{path}:29: ADMIN_TOKEN", f"{path}:5: ADMIN_TOKEN"]


def test_tree_scan_walks_subdirectories_and_skips_links(tmp_path):
    (tmp_path / "logs" / "serve").mkdir(parents=True)
    (tmp_path / "logs" / "serve" / "controller.log").write_text(f"ok\nDeploying with {TOKEN.value}\n")
    (tmp_path / "logs" / "clean.log").write_text("nothing here\n")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text(TOKEN.value)
    (tmp_path / "link.txt").symlink_to(outside)
    found, files = scan_tree(tmp_path, [TOKEN])
    assert found == ["logs/serve/controller.log:2: ADMIN_TOKEN"] and files == 2


def test_no_secret_no_finding_in_a_tree(tmp_path):
    (tmp_path / "a.log").write_text("plain\n")
    assert scan_tree(tmp_path, [TOKEN]) == ([], 1)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = f'{{"leak": "{TOKEN.value}"}}\n'.encode()
        if self.path.startswith("/gzip"):
            body = gzip.compress(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path.startswith("/gzip"):
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def leaky_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_http_recorder_sees_every_client_path(leaky_server):
    """httpx sync, streamed, async and gzip-compressed, and requests: every body is scanned."""
    import requests

    recorder = Recorder([TOKEN])
    undo = install_http_recorder(recorder)
    try:
        assert TOKEN.value in httpx.get(leaky_server + "/plain").text
        with httpx.Client() as client, client.stream("GET", leaky_server + "/streamed") as r:
            assert TOKEN.value.encode() in b"".join(r.iter_bytes())
        async with httpx.AsyncClient() as client:
            assert TOKEN.value in (await client.get(leaky_server + "/async")).text
        assert TOKEN.value in httpx.get(leaky_server + "/gzip").text
        assert TOKEN.value in requests.get(leaky_server + "/requests", timeout=10).text
    finally:
        undo()
    assert recorder.findings == [f"HTTP response GET /{p}:1: ADMIN_TOKEN"
                                 for p in ("plain", "streamed", "async", "gzip", "requests")]
    assert recorder.counts["HTTP response"] == 5
    httpx.get(leaky_server + "/after")  # uninstalled: no longer recorded
    assert recorder.counts["HTTP response"] == 5


def test_recorder_keeps_findings_not_data():
    recorder = Recorder([TOKEN])
    recorder.record("error", "test_x", f"ProviderCallError: bad key {TOKEN.value}")
    recorder.record("error", "test_y", "nothing secret")
    assert recorder.findings == ["error test_x:1: ADMIN_TOKEN"] and recorder.counts == {"error": 2}
    assert not hasattr(recorder, "data")


def test_scanning_a_path_masks_the_path(tmp_path: Path):
    """A secret in a file *name* is shown as its label."""
    path = tmp_path / f"{TOKEN.value}.log"
    path.write_text(TOKEN.value)
    (found,) = scan_file(path, [TOKEN])
    assert TOKEN.value not in found and "<ADMIN_TOKEN>.log:1: ADMIN_TOKEN" in found
