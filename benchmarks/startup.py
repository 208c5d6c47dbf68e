"""`make serve` from the command to the first answer: time, phases and memory.

Runs `make serve`'s command (`python -m serve_app serve`) on the default
config/providers.yaml, with only the HTTP port changed and its own Ray temp
dir and data dir, exactly as a newcomer starts it (its own local Ray, the
default logical CPU count). Measures the seconds to the first 200 from
/healthz and to the first embedding, reads the phase table the server prints
when ready, takes the serving stack's memory (PSS and summed RSS of the
server, its Ray processes and the embedded PostgreSQL), then stops it with
SIGTERM and times the stop. ``--runs N`` starts it N times (``--quick``: 1).

    python benchmarks/startup.py [--quick] [--runs 3]

Last line: one JSON object (``healthz_s``, ``first_embedding_s``, ``pss_gib``,
``rss_gib``, ``stop_s``: medians over the runs; ``runs``: each run with its
phases and its memory by kind of process).

On a cluster: ``--address A [--config providers.yaml] [--provider embeddings/NAME]``
deploys the file's providers (default: config/providers.yaml, all of them)
there under an app name of the run's own, as many times as ``--runs``, and
times the deploy to the first 200 from the app's /healthz, the first answer of
``--provider`` (an embedding), and the removal. Memory is not measured there
(the processes are on other machines). ``--registry-url`` is refused: a running
registry has already started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._target import (  # noqa: E402
    Target,
    add_target_args,
    describe_environment,
    mode_of,
    refuse_running,
    write_result,
)
from providers.net import free_port  # noqa: E402
from serve_app.startup import stack_memory  # noqa: E402

PHASE_ROW = re.compile(r"^  (\S.*?)\s{2,}(\d+\.\d)\s+(\d+\.\d)$")


def one_start(deadline_s: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # Ray's socket paths must stay short
    port = free_port()
    config = work / "providers.yaml"
    config.write_text(re.sub(r"(?m)^(\s+http_port:\s*)\d+", rf"\g<1>{port}",
                             (ROOT / "config" / "providers.yaml").read_text()))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PROVIDER_REGISTRY_LOCAL_CPUS")}
    env.update({"RAY_TMPDIR": str(work), "PGVECTOR_DATA_DIR": str(work / "pgvector"),
                "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"})
    log_path = work / "serve.log"
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "serve_app", "serve", "--config", str(config)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        healthz_s = first_embedding_s = None
        with httpx.Client(timeout=30) as client:
            while time.monotonic() - started < deadline_s and proc.poll() is None:
                try:
                    if client.get(base + "/healthz").status_code == 200:
                        healthz_s = time.monotonic() - started
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            if healthz_s is None:
                raise RuntimeError(f"no /healthz within {deadline_s:g} s:\n{log_path.read_text()[-3000:]}")
            reply = client.post(base + "/v1/embeddings", json={"model": "minilm", "input": ["hello"]})
            reply.raise_for_status()
            first_embedding_s = time.monotonic() - started
        # The table is printed right after the router answers; give it a moment.
        for _ in range(100):
            if "  ready" in log_path.read_text(errors="replace"):
                break
            time.sleep(0.1)
        phases = [{"phase": m.group(1), "start_s": float(m.group(2)), "took_s": float(m.group(3))}
                  for m in map(PHASE_ROW.match, log_path.read_text(errors="replace").splitlines()) if m]
        memory = stack_memory(proc.pid, markers=(str(work),))
    finally:
        stop_began = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        stop_s = time.monotonic() - stop_began
        shutil.rmtree(work, ignore_errors=True)
    return {"healthz_s": round(healthz_s, 2), "first_embedding_s": round(first_embedding_s, 2),
            "pss_gib": round(memory.pss_bytes / 2**30, 3), "rss_gib": round(memory.rss_bytes / 2**30, 3),
            "processes": memory.processes, "stop_s": round(stop_s, 2), "exit_code": proc.returncode,
            "phases": phases, "rss_mib_by_kind": {k: round(v / 2**20) for k, v in memory.by_kind.items()}}


def on_target(args: argparse.Namespace) -> dict:
    """Deploy the whole file on --address, ``--runs`` times; each time removed again."""
    from benchmarks._target import _hash, split_provider
    from providers.registry.config import load_config

    refuse_running(args, "startup", "starts a registry (a running one has already started)")
    ptype, name = split_provider(args.provider)
    path = Path(args.config or ROOT / "config" / "providers.yaml")
    target = Target(mode="config", ptype=ptype, name=name, config_hash=_hash(path.read_bytes()))
    target.connect(args.address, need_ray=True)
    runs, environment = [], {}
    try:
        for _ in range(1 if args.quick else args.runs):
            config = load_config(str(path))
            config.registry.http_port = free_port()
            t = time.monotonic()
            target.deploy(config, label="startup")
            deployed_s = time.monotonic() - t
            with httpx.Client(timeout=60) as client:
                healthz = client.get(target.url + "/healthz")
                healthz.raise_for_status()
                healthz_s = time.monotonic() - t
                first_s = None
                if ptype == "embeddings":
                    client.post(target.url + "/v1/embeddings", json={"model": name, "input": ["hello"]}).raise_for_status()
                    first_s = time.monotonic() - t
            environment = environment or describe_environment(target)
            t = time.monotonic()
            left = target.remove()
            runs.append({"deploy_s": round(deployed_s, 2), "healthz_s": round(healthz_s, 2),
                         "first_embedding_s": round(first_s, 2) if first_s is not None else None,
                         "stop_s": round(time.monotonic() - t, 2), "left_deployed": left})
    finally:
        if target.deployed:
            target.remove()
        target.close()
    keys = ("deploy_s", "healthz_s", "first_embedding_s", "stop_s")
    return {"benchmark": "startup", "mode": "cluster", "config": str(path), "provider": f"{ptype}/{name}",
            **{k: statistics.median(r[k] for r in runs) if all(r[k] is not None for r in runs) else None
               for k in keys},
            "pss_gib": None, "memory_skipped": "the serving processes are on the cluster's nodes",
            "left_deployed": [a for r in runs for a in r["left_deployed"]], "runs": runs,
            "environment": environment}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one start")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--deadline-s", type=float, default=300)
    add_target_args(ap)
    args = ap.parse_args()
    if mode_of(args) != "own" or args.address:
        out = on_target(args)
        write_result(args.out, "startup", out)
        print(json.dumps(out))
        return
    runs = [one_start(args.deadline_s) for _ in range(1 if args.quick else args.runs)]
    for r in runs:
        print(f"healthz {r['healthz_s']} s, first embedding {r['first_embedding_s']} s, "
              f"PSS {r['pss_gib']} GiB, summed RSS {r['rss_gib']} GiB, stop {r['stop_s']} s", flush=True)
    keys = ("healthz_s", "first_embedding_s", "pss_gib", "rss_gib", "stop_s")
    print(json.dumps({**{k: statistics.median(r[k] for r in runs) for k in keys}, "runs": runs}))


if __name__ == "__main__":
    main()
