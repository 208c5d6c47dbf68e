"""tests/processes.py finds a test's processes by command line and by open files, on real processes."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.processes import processes_under


def test_a_process_is_found_by_its_command_line_or_by_a_file_it_holds_open():
    work = Path(tempfile.mkdtemp(prefix="pu"))
    log = work / "agent.log"
    # like Ray's agents: nothing of the temp dir in the command line, a log file open in it
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'a'); time.sleep(60)",
                               str(log)])
    named = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(work)])
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for _ in range(200):  # until the holder has opened its file
            if log.exists():
                break
            subprocess.run(["sleep", "0.05"])
        found = set(processes_under(str(work)))
        assert holder.pid in found and named.pid in found
        assert bystander.pid not in found
    finally:
        for p in (holder, named, bystander):
            p.kill()
            p.wait()
