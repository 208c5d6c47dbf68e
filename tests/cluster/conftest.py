"""A local multi-raylet cluster of a test's own: `ray start` nodes in a temp dir, stopped by that dir.

The same recipe as test_gpu_placement.py's fixture (see its docstring for why
`ray start` and not `ray.cluster_utils.Cluster`, and why every port is chosen
here), as a helper for tests that drive the cluster from *subprocesses* only:
the pytest process never joins it. That matters in this directory: Ray's
RayConfig reads RAY_AUTH_MODE once per process, and test_gpu_placement.py
joins its own cluster, with its own token, from the pytest process.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from providers.net import free_port
from tests.processes import processes_under, stop_processes_under

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# The token of every cluster the pytest process itself joins (test_gpu_placement.py,
# test_node_loss.py): one per process, because the driver reads its token once per
# process. With a token per module, the second module's ray.init sent the first's:
# "InvalidAuthToken: Authentication token is missing or incorrect" (make test, 2026-12-05).
# Set before Ray is imported: RayConfig reads RAY_AUTH_MODE once per process too.
PROCESS_AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def cluster_env() -> dict[str, str]:
    """The nodes' environment, which their workers inherit: this checkout importable,
    offline, no prestarted workers (2 shared cores), a token of this cluster's own."""
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "RAY_enable_worker_prestart": "0", "RAY_prestart_worker_first_driver": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def ray_start(args: list[str], env: dict[str, str]) -> None:
    ports = [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
             f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"]
    r = subprocess.run([str(BIN / "ray"), "start", *args, *ports,
                        "--object-store-memory=100000000", "--disable-usage-stats"],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"ray start {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"


@contextmanager
def local_cluster(nodes: list[list[str]]) -> Iterator[dict]:
    """A head (``--num-cpus=2 --num-gpus=0``) plus one node per entry of ``nodes`` (its
    extra ``ray start`` flags). Yields ``address``, ``env`` (for every subprocess that
    joins) and ``work``; stops exactly the processes under ``work`` afterwards."""
    work = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    env = cluster_env()
    port = free_port()
    try:
        ray_start(["--head", f"--port={port}", f"--temp-dir={work}", "--num-cpus=2", "--num-gpus=0",
                   "--include-dashboard=false", f"--ray-client-server-port={free_port()}"], env)
        for extra in nodes:
            ray_start([f"--address=127.0.0.1:{port}", f"--temp-dir={work}", *extra], env)
        yield {"address": f"127.0.0.1:{port}", "env": env, "work": work}
    finally:
        # 3 s grace: one of Ray's processes sits out SIGTERM for the whole grace; nothing needs a clean end.
        stop_processes_under(str(work), term_grace_s=3)
        left = processes_under(str(work))
        shutil.rmtree(work, ignore_errors=True)
        assert not left, f"processes of the test cluster survived: {left}"
