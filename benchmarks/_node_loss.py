"""The reliability report's node-loss rows (issue 16, part 1).

They run tests/cluster/test_node_loss.py, which builds a head and two worker
raylets on this machine and kills one worker under load, and read the
figures it writes (``NODE_LOSS_FIGURES``): one scenario, one place that
builds it, so the test and the report cannot drift apart. Two rows: the
provider with a second replica and a fallback, and the one-replica provider
without a fallback whose node died.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

NAME = "node lost"
ROOT = Path(__file__).resolve().parents[1]


def rows() -> list[dict[str, Any]]:
    out = Path(tempfile.mkdtemp(prefix="node-loss-")) / "figures.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/cluster/test_node_loss.py"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "NODE_LOSS_FIGURES": str(out)}, timeout=900)
    if not out.exists():
        raise RuntimeError(f"the node-loss test wrote no figures:\n{proc.stdout[-2000:]}")
    f = json.loads(out.read_text())
    base = {"failed_with_fallback": 0, "lost": 0, "writes_acknowledged": 0, "writes_unverified": 0,
            "max_latency_ms": None}
    return [
        {**base, "fault": f"{NAME}, a second replica and a fallback elsewhere", "requests": f["calls_after_kill"],
         "failed": f["failed"], "failed_with_fallback": f["failed"], "recovered_after_s": f["full_capacity_s"],
         "error_p99_ms": None, "first_error": f["failures"][0] if f["failures"] else None,
         "node_loss": {k: f[k] for k in ("processes_killed", "fell_back", "replicas_after_loss", "full_capacity_s")}},
        # Every answer an error naming it, none a hang: 504 at the deadline while Ray does not
        # know the node is gone, then 503 + Retry-After at once when its breaker opens.
        {**base, "fault": f"{NAME}, one replica and no fallback there", "requests": len(f["lonely_answers"]),
         "failed": sum(1 for code, _ in f["lonely_answers"] if code != 200),
         "recovered_after_s": f["full_capacity_s"],
         "error_p99_ms": round(max(sec for _, sec in f["lonely_answers"]) * 1000, 1),
         "first_error": f"{f['lonely_status']} {f['lonely_error']}",
         "node_loss": {"answers": f["lonely_answers"], "unavailable_in_s": f["lonely_unavailable_s"],
                       "unavailable_error": f["lonely_unavailable_error"]}},
    ]
