"""`make test`: every suite, side by side where they can be, and how long each took.

- The tests that need no Ray (unit, stores, caches, rerankers, graph: real
  databases and models in process) run in one pytest process *beside* the
  integration suite, whose Ray session spends much of its time waiting on
  replicas to start: on 2 cores that saves most of their minute. Their output
  is kept and printed once they end, so the two never interleave.
- tests/deploy (`ray start --head`, `serve deploy`), tests/newcomer (`make
  serve`'s command) and tests/cluster (a head plus a node declaring a GPU it
  lacks) each start a Ray instance of their own, after the integration
  session's is gone, beside each other.
- The registries the parts start run on HAProxy, the default ingress, but
  tests/deploy's, which runs on Serve's Python proxy (``INGRESS``), so both
  stay working. tests/cluster's clusters (`ray start` without the switches
  of `provider-registry ray-env`) run on the proxy too.

Exit status: 0 only when every part passed. Extra arguments go to every pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
# Each starts a Ray instance of its own. tests/cluster is two pytest processes: its
# three files ran 240 s in one, long after deploy and newcomer (85 s) had ended.
OWN_RAY = ["tests/deploy", "tests/newcomer", "tests/cluster/test_node_loss.py",
           "tests/cluster/test_gpu_placement.py tests/cluster/test_sweep.py"]
OWN_RAY_DIRS = ["tests/deploy", "tests/newcomer", "tests/cluster"]
RAY_SESSION = "tests/integration"
# Every part runs on the ingress a registry starts by default (HAProxy, serve_app/ingress.py)
# but this one: `serve deploy` onto a head started with Serve's Python proxy keeps the
# other ingress working (issue 13: "one CI job or a marked subset on the Python proxy").
INGRESS = {"tests/deploy": "proxy"}


def ray_free_dirs() -> list[str]:
    """Every test directory but those that use Ray."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").iterdir()
                  if p.is_dir() and any(p.glob("test_*.py")) and str(p.relative_to(ROOT)) not in
                  [RAY_SESSION, *OWN_RAY_DIRS])


def ingress_env(suite: str) -> dict[str, str]:
    """The environment of ``suite``'s pytest: the ingress it runs on, unless the caller chose one."""
    env = dict(os.environ)
    if suite in INGRESS and "PROVIDER_REGISTRY_INGRESS" not in env:
        env["PROVIDER_REGISTRY_INGRESS"] = INGRESS[suite]
    return env


def main(extra: list[str]) -> int:
    began = time.monotonic()
    took: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryFile() as side_output:
        side_began = time.monotonic()
        side = subprocess.Popen(PYTEST + ray_free_dirs() + ["--durations=10", *extra], cwd=ROOT,
                                stdout=side_output, stderr=subprocess.STDOUT)
        side_ended: list[float] = []
        watcher = threading.Thread(target=lambda: (side.wait(), side_ended.append(time.monotonic())), daemon=True)
        watcher.start()
        t = time.monotonic()
        rc = subprocess.call(PYTEST + [RAY_SESSION, "--durations=25", *extra], cwd=ROOT)
        took[RAY_SESSION] = (time.monotonic() - t, rc)
        watcher.join()
        took[" ".join(ray_free_dirs()) + " (beside it)"] = (side_ended[0] - side_began, side.returncode)
        side_output.seek(0)
        print(f"\n===== {' '.join(ray_free_dirs())} (ran beside {RAY_SESSION}) =====", flush=True)
        sys.stdout.buffer.write(side_output.read())
        sys.stdout.flush()
    # Side by side too: each has a Ray instance and a temp dir of its own, and generous deadlines.
    outputs = [tempfile.TemporaryFile() for _ in OWN_RAY]
    t = time.monotonic()
    procs = [subprocess.Popen(PYTEST + [*suite.split(), *extra], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              env=ingress_env(suite))
             for suite, out in zip(OWN_RAY, outputs)]
    for suite, proc, out in zip(OWN_RAY, procs, outputs):
        rc = proc.wait()
        took[suite + " (beside each other)"] = (time.monotonic() - t, rc)
        out.seek(0)
        print(f"\n===== {suite} (ingress: {ingress_env(suite).get('PROVIDER_REGISTRY_INGRESS', 'default')}) =====",
              flush=True)
        sys.stdout.buffer.write(out.read())
        sys.stdout.flush()
        out.close()
    print("\n===== make test: wall time of each part =====")
    for name, (seconds, rc) in took.items():
        print(f"{seconds:7.1f} s  {'passed' if rc == 0 else f'FAILED (exit {rc})'}  {name}")
    print(f"{time.monotonic() - began:7.1f} s  in all")
    return 0 if all(rc == 0 for _, rc in took.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
