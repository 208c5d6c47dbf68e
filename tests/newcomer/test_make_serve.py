"""A newcomer's first session: `make serve` with the default config, then the seed's examples.

Runs in its own pytest process (the Makefile's third step), apart from the
session Ray of tests/integration (its `num_cpus=8` fixture): the registry is
started as `make serve` starts it, `python -m serve_app serve --config` on a
copy of config/providers.yaml that differs only in `registry.http_port`, so
it starts its own local Ray instance with its own logical CPU count. Its data
(the embedded PostgreSQL) and Ray's temp dir are in a directory of this
test's own; another process joins that Ray instance by its GCS address and
runs tests/newcomer/seed_examples.py, the seed's Python examples. The test
stops the server with SIGINT (Ctrl-C, which also stops the embedded
PostgreSQL) and then ends exactly the processes left under its directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

from providers.net import free_port
from tests.processes import processes_under, stop_processes_under

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "providers.yaml"
SEED_SCRIPT = Path(__file__).with_name("seed_examples.py")
STARTUP_DEADLINE_S = 300  # the whole `make serve` start, Ray included; a busy 2-core machine is slow
SEED_DEADLINE_S = 900     # the examples, two MiniLM deployments (registration, reload) among them
STOP_DEADLINE_S = 120


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def gcs_addresses(marker: str) -> set[str]:
    """The `--gcs-address` of the Ray processes under ``marker``: how Ray itself finds a
    local instance (ray._private.services.find_gcs_addresses), limited to this test's."""
    found = set()
    for pid in processes_under(marker):
        found.update(re.findall(r"--gcs[-_]address=(\S+)", cmdline(pid)))
    return found


def wait_for(predicate, deadline_s: float, interval_s: float = 0.5):
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval_s)


def config_copy(work: Path, http_port: int) -> Path:
    """config/providers.yaml, byte for byte, but for the port."""
    text = CONFIG.read_text(encoding="utf-8")
    copied, n = re.subn(r"(?m)^(\s+http_port:\s*)\d+", rf"\g<1>{http_port}", text)
    assert n == 1, "config/providers.yaml has no single registry.http_port line to change"
    original, changed = yaml.safe_load(text), yaml.safe_load(copied)
    original["registry"].pop("http_port")
    assert changed["registry"].pop("http_port") == http_port
    assert changed == original
    path = work / "providers.yaml"
    path.write_text(copied, encoding="utf-8")
    return path


@pytest.fixture
def make_serve():
    """`make serve`'s command on the default config; yields what a test reads of it."""
    work = Path(tempfile.mkdtemp(prefix="rn", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    port = free_port()
    config = config_copy(work, port)
    env = {k: v for k, v in os.environ.items()
           # what would make it join another Ray instance or count its CPUs otherwise
           if k not in ("RAY_ADDRESS", "PROVIDER_REGISTRY_LOCAL_CPUS")}
    env.update({
        "RAY_TMPDIR": str(work),                        # Ray's temp dir (sessions, sockets, logs) is the test's
        "PGVECTOR_DATA_DIR": str(work / "pgvector"),    # the config's only path: ${PGVECTOR_DATA_DIR:-.data/pgvector}
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    })
    log_path = work / "serve.log"
    log = open(log_path, "wb")
    command = [sys.executable, "-m", "serve_app", "serve", "--config", str(config)]
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    state = {"work": work, "port": port, "env": env, "proc": proc, "log_path": log_path,
             "started": started, "base": f"http://127.0.0.1:{port}"}
    try:
        yield state
    finally:
        log_text = lambda: log_path.read_text(errors="replace")  # noqa: E731
        # Ctrl-C: the server stops Serve and its embedded PostgreSQL, and its Ray with it.
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(60)
                log.close()
                pytest.fail(f"`serve` did not stop within {STOP_DEADLINE_S} s of SIGINT; its output:\n{log_text()}")
        log.close()
        stop_rc = proc.returncode
        # HAProxy's private run directory (its config, admin socket, server state) and its
        # process go with `serve` (serve_app/ingress.py): nothing of the ingress is left behind.
        run_dir = state.get("haproxy_run_dir")
        haproxy_left = run_dir and wait_for(lambda: not run_dir.exists() and not processes_under(str(run_dir)), 60)
        # What the server left behind on its own, given time to end.
        wait_for(lambda: not processes_under(str(work)), 60)
        leftovers = {pid: cmdline(pid) for pid in processes_under(str(work))}
        postgres_left = {pid: c for pid, c in leftovers.items() if "postgres" in c}
        if leftovers:
            print(f"\nleft running {len(leftovers)} process(es) under {work} after `serve` exited: "
                  + "; ".join(c[:160] for c in leftovers.values()))
        survivors = stop_processes_under(str(work))
        output = log_text()
        shutil.rmtree(work, ignore_errors=True)
        assert not survivors, "processes of the test's Ray instance survived SIGKILL"
        assert stop_rc == 0, f"serve exited {stop_rc}:\n{output[-4000:]}"
        assert not postgres_left, f"the embedded PostgreSQL outlived `serve` (SIGINT): {postgres_left}"
        if run_dir:
            assert haproxy_left, (f"HAProxy's run directory {run_dir} or a process using it outlived `serve`: "
                                  f"exists={run_dir.exists()}, processes={processes_under(str(run_dir))}")


@pytest.mark.timeout(STARTUP_DEADLINE_S + SEED_DEADLINE_S + 2 * STOP_DEADLINE_S + 120)
def test_make_serve_then_the_seeds_examples(make_serve):
    s = make_serve
    proc, base = s["proc"], s["base"]

    def log() -> str:
        return s["log_path"].read_text(errors="replace")

    # -- `make serve` up: poll /healthz ------------------------------------------------------
    def healthy():
        if proc.poll() is not None:
            return "exited"
        try:
            r = httpx.get(base + "/healthz", timeout=5)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    health = wait_for(healthy, STARTUP_DEADLINE_S)
    startup_s = time.monotonic() - s["started"]
    assert health not in (None, "exited"), (
        f"no 200 from {base}/healthz ({'serve exited ' + str(proc.returncode) if health else 'deadline'}) "
        f"after {startup_s:.0f} s; serve's output:\n{log()[-6000:]}")
    print(f"\n`make serve` (default config, its own Ray): /healthz answered after {startup_s:.1f} s")
    assert startup_s < STARTUP_DEADLINE_S
    assert health["status"] == "ok" and health["providers"] == 5, health  # the default config's five
    assert wait_for(lambda: "Provider registry is serving" in log(), 60), log()[-4000:]

    # -- its Ray: a local instance of its own, 4 logical CPUs per core -------------------------
    out = log()
    ray_line = next((line for line in out.splitlines() if line.startswith("Ray:")), None)
    assert ray_line, f"no 'Ray:' line in serve's output:\n{out[-4000:]}"
    print(ray_line)
    m = re.match(r"Ray: started a local instance with (\d+(?:\.\d+)?) logical CPUs", ray_line)
    assert m, ray_line
    assert float(m.group(1)) == 4 * (os.cpu_count() or 1), ray_line
    # -- the ingress it chose, said at start (serve_app/ingress.py) ------------------------------
    ingress_line = next((line for line in out.splitlines() if line.startswith("Ingress:")), None)
    assert ingress_line, f"no 'Ingress:' line in serve's output:\n{out[-4000:]}"
    print(ingress_line)
    if os.environ.get("PROVIDER_REGISTRY_INGRESS", "haproxy") == "haproxy":
        m = re.match(r"Ingress: HAProxy, .*files under (\S+), stats port (\d+), metrics port (\d+);", ingress_line)
        assert m, ingress_line
        run_dir = s["haproxy_run_dir"] = Path(m.group(1))
        assert oct(run_dir.stat().st_mode & 0o777) == "0o700", "HAProxy's admin socket is mode 666: its dir must be private"
        assert list(run_dir.glob("*/haproxy.cfg")), f"no HAProxy config under {run_dir}"
        # Polled: Serve's HAProxy manager may be between two HAProxy processes (its actor restarted
        # by the controller after a missed health check, say). Seen once in CI, beside tests/deploy on
        # a busy machine: /healthz had answered through HAProxy, then one look found no process.
        assert wait_for(lambda: processes_under(str(run_dir)), 30), \
            f"no HAProxy process runs with its files under {run_dir}"
        stats = httpx.get(f"http://127.0.0.1:{m.group(2)}/stats", timeout=10)
        assert stats.status_code == 200, f"HAProxy's stats page is not on the port it printed: {stats.status_code}"
    else:
        assert ingress_line.startswith("Ingress: Serve's Python proxy"), ingress_line
    # -- the startup table it prints when ready, and nothing Ray starts that a local registry never uses
    assert wait_for(lambda: "\n  ready " in log(), 60), f"no startup table in serve's output:\n{log()[-4000:]}"
    table = log()[log().index("Startup ("):]
    print(table[:table.index("\n  ready ") + 20])
    for phase in ("Ray", "Serve controller and HTTP proxy", "embeddings/minilm", "registry router"):
        assert re.search(rf"(?m)^  {re.escape(phase)}\s+\d+\.\d\s+\d+\.\d$", table), (phase, table)
    assert re.match(r"Startup \(serving stack, \d+ processes: \d+\.\d\d GiB PSS, \d+\.\d\d GiB summed RSS\)", table)
    unused = {pid: c for pid in processes_under(str(s["work"])) for c in [cmdline(pid)]
              if c.startswith("ray::IDLE") or "log_monitor.py" in c or "autoscaler/_private/monitor.py" in c}
    assert not unused, f"the local Ray runs processes the registry never uses: {unused}"

    gcs = wait_for(lambda: gcs_addresses(str(s["work"])), 30)
    assert len(gcs) == 1, f"GCS addresses of the test's Ray instance: {gcs}"
    (address,) = gcs

    # -- the seed's examples, from another process joining that Ray ----------------------------
    # RAY_AUTH_MODE=token: Ray 2.60's local `ray.init()` turns token authentication on
    # (token in ~/.ray/auth_token), and a driver given an explicit address (RAY_ADDRESS)
    # sends the token only when told to; without it: "InvalidAuthToken: Authentication
    # token is missing or incorrect" and ConnectionError. Only address="auto" turns it on.
    env = {**s["env"], "RAY_ADDRESS": address, "RAY_AUTH_MODE": "token"}
    t = time.monotonic()
    r = subprocess.run([sys.executable, str(SEED_SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=SEED_DEADLINE_S)
    seed_s = time.monotonic() - t
    print(f"seed_examples.py (RAY_ADDRESS={address}) took {seed_s:.1f} s; its output:\n{r.stdout}")
    both = r.stdout + r.stderr
    assert "InsufficientResourcesError" not in both, both[-6000:]
    assert r.returncode == 0, f"seed_examples.py exited {r.returncode}:\n{both[-6000:]}"
    line = next(x for x in r.stdout.splitlines() if x.startswith("SEED_RESULT "))
    res = json.loads(line[len("SEED_RESULT "):])

    # Basic usage: two 384-d unit vectors (normalize_embeddings: true)
    assert res["basic"]["count"] == 2 and res["basic"]["dims"] == [384, 384], res["basic"]
    assert res["basic"]["get_dimension"] == 384
    assert all(abs(n - 1.0) < 1e-3 for n in res["basic"]["norms"]), res["basic"]
    # Dynamic registration, with no `deployment:` section: placed, not refused
    assert res["register"] is True
    # With fallback: minilm -> new_embedder, one call through it
    assert res["fallback"]["dims"] == 384 and "with fallback" in res["fallback"]["repr"], res["fallback"]
    # Reload of the registered provider: a new version, healthy
    assert res["reload"] is True
    assert "Provider reloaded successfully" in r.stdout
    h = res["health"]
    assert h["status"] == "healthy" and h["test_successful"] is True and h["model_loaded"] is True, h
    assert h["version"] == 2 and h["dimension"] == 384, h
    assert "\nhealthy\n" in r.stdout  # print(health["status"]) as the seed prints it
    # Stats: the default five and the registered one
    st = res["stats"]
    assert st["total"] == 6 and st["provider_counts"]["embeddings"] == 2, st
    assert {"embeddings/minilm", "embeddings/new_embedder"} <= set(st["usage_keys"]), st
    assert f"Total providers: {st['total']}" in r.stdout
    # Provider information
    emb = res["list"]["embeddings"]
    assert set(emb) == {"minilm", "new_embedder"}, emb
    assert emb["minilm"]["fallback"] == ["new_embedder"], emb
    assert emb["minilm"]["usage_count"] >= 1 and emb["new_embedder"]["version"] == 2, emb
    assert all(info["initialized"] is True for info in emb.values()), emb
    assert res["list"]["all"]["vector_stores"] == ["memories"], res["list"]["all"]
    assert res["list"]["all"]["tools"] == ["memory.search", "memory.store"], res["list"]["all"]
    assert "Provider: new_embedder" in r.stdout and "  Initialized: True" in r.stdout
    # and the server saw no refusal either
    assert "InsufficientResourcesError" not in log()
