"""Ctrl-C in the terminal that runs a plain script: the job stops in order and resumes later.

A terminal's Ctrl-C signals every process of its foreground process group. The script runs
under a real pseudo-terminal here, with Prefect's embedded API server, and the test types
Ctrl-C into it, as a user does.
"""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.jobs import process_tree_pids
from tests.test_plain_script import embedded_environment

pytestmark = pytest.mark.slow  # the script starts Prefect's embedded server and a job

SCRIPT = """\
from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep

config = ParallelRunConfig(entry_script="slow.py", source_directory="scripts",
                           mini_batch_size="1", error_threshold=-1, output_action="append_row",
                           compute_target="local", node_count=1, process_count_per_node=2)
step = ParallelRunStep(name="interrupted", parallel_run_config=config,
                       inputs=[FileDataset.from_files("items")], output="out",
                       mini_batches_per_task=1)
print("RESULT", step.run().status)
"""

SLOW = """\
import os
import time

def run(mini_batch):
    time.sleep(0.3)
    return [os.path.basename(path) for path in mini_batch]
"""
ITEMS = 60


def run_in_terminal(folder: Path, interrupt_after_rows: int | None) -> tuple[int, str]:
    """Run job.py under a pseudo-terminal; type Ctrl-C once `interrupt_after_rows` mini-batches
    are committed (None: never). Returns the exit code and what the terminal showed."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the script, in the terminal's foreground process group
        os.chdir(folder)
        os.execve(sys.executable, [sys.executable, "job.py"],
                  embedded_environment(PREFECT_HOME=str(folder / "prefect-home")))
    screen, interrupted = b"", interrupt_after_rows is None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([terminal], [], [], 0.2)
        if ready:
            try:
                data = os.read(terminal, 65536)
            except OSError:  # the child has closed the terminal: it exited
                break
            if not data:
                break
            screen += data
        if not interrupted and committed(folder) >= interrupt_after_rows:
            os.write(terminal, b"\x03")  # Ctrl-C, as typed
            interrupted = True
    else:
        os.kill(pid, 9)
        pytest.fail(f"the script did not end:\n{screen.decode(errors='replace')[-3000:]}")
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    return os.waitstatus_to_exitcode(status), screen.decode(errors="replace").replace("\r", "")


def committed(folder: Path) -> int:
    """Mini-batches committed so far: the ledger's records."""
    ledger = folder / "out" / ".parallel_run" / "ledger"
    return len(list(ledger.glob("*"))) if ledger.exists() else 0


def test_ctrl_c_stops_the_job_in_order_and_the_script_resumes_it(tmp_path: Path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "slow.py").write_text(SLOW)
    (tmp_path / "items").mkdir()
    names = [f"item_{number:03d}.txt" for number in range(ITEMS)]
    for name in names:
        (tmp_path / "items" / name).write_text(name)
    (tmp_path / "job.py").write_text(SCRIPT)
    before = process_tree_pids()

    code, screen = run_in_terminal(tmp_path, interrupt_after_rows=5)
    assert code != 0, screen  # interrupted: the script did not finish
    assert "KeyboardInterrupt" in screen and "RESULT Completed" not in screen, screen
    assert "Cancelling the job: the flow process was interrupted (Ctrl-C)" in screen, screen
    assert "Compute Failed" not in screen, screen  # no worker ERROR for the stopped job
    done_before = committed(tmp_path)
    assert 5 <= done_before < ITEMS, done_before

    code, screen = run_in_terminal(tmp_path, interrupt_after_rows=None)
    assert code == 0, screen
    assert "RESULT Completed" in screen, screen
    assert f"{done_before} of {ITEMS} mini-batches were committed by an earlier run" in screen
    assert (tmp_path / "out" / "parallel_run_step.txt").read_text().split() == names

    deadline = time.monotonic() + 15
    while (left := started_in(tmp_path) | (process_tree_pids() - before)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert not left, f"processes left behind: {left}"


def started_in(folder: Path) -> set[int]:
    """Processes working in `folder`: what the script started (its scheduler, workers and
    entry-script processes) even once they are no longer its children."""
    found = set()
    for process in psutil.process_iter(["cwd"]):
        if (process.info["cwd"] or "").startswith(str(folder)):
            found.add(process.pid)
    return found
