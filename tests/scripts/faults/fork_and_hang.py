"""Entry script whose run(), for items that say "hang", starts child processes (a shell
command, a Python fork, a Python subprocess) that would outlive it, writes their pids to
$CHILD_PIDS_FILE, then hangs. Other items succeed."""

import os
import subprocess
import sys
import time
from pathlib import Path


def run(mini_batch):
    rows = []
    for path in mini_batch:
        if Path(path).read_text().strip() == "hang":
            _start_children_and_hang()
        rows.append(f"{Path(path).name} ok")
    return rows


def _start_children_and_hang():
    shell = subprocess.Popen(["sleep", "600"])
    forked = os.fork()
    if forked == 0:
        time.sleep(600)
        os._exit(0)
    python = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["CHILD_PIDS_FILE"], "a") as pids:
        pids.write(f"{shell.pid}\n{forked}\n{python.pid}\n")
    time.sleep(600)
