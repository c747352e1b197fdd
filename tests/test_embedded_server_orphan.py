"""A plain script killed outright mid-job leaves no Prefect API server behind.

The script runs with the embedded defaults (no PREFECT_API_URL), so its job starts Prefect's
embedded API server, in a session of its own. SIGKILL runs no exit handler: the server must
notice by itself that the process which started it is gone, and shut down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.jobs import kill_processes, wait_until
from tests.test_plain_script import embedded_environment, write_plain_job

pytestmark = pytest.mark.slow  # the script starts Prefect's embedded server and a job

SERVER_APP = "prefect.server.api.server:create_app"

SCRIPT = """\
from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep

config = ParallelRunConfig(entry_script="slow.py", source_directory="scripts",
                           mini_batch_size="1", error_threshold=-1, output_action="append_row",
                           compute_target="local", node_count=1, process_count_per_node=1)
step = ParallelRunStep(name="killed", parallel_run_config=config,
                       inputs=[FileDataset.from_files("items")], output="out")
print("RESULT", step.run().status)
"""

SLOW = """\
import os
import pathlib
import time

def run(mini_batch):
    pathlib.Path(os.environ["JOB_RUNNING_MARKER"]).touch()
    time.sleep(1)
    return [os.path.basename(path) for path in mini_batch]
"""


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie that its new parent has not reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_plain_script_leaves_no_embedded_api_server_running(tmp_path: Path):
    write_plain_job(tmp_path, SCRIPT, {"slow.py": SLOW}, items=30)
    marker = tmp_path / "job-is-running"
    log = (tmp_path / "script-output.txt").open("w")
    script = subprocess.Popen(
        [sys.executable, "job.py"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        env=embedded_environment(
            PREFECT_HOME=str(tmp_path / "prefect-home"), JOB_RUNNING_MARKER=str(marker)
        ),
    )
    family: list[psutil.Process] = []
    try:
        running = wait_until(lambda: marker.exists() or script.poll() is not None, 300)
        output = (tmp_path / "script-output.txt").read_text()
        assert running and marker.exists(), f"the job did not start running:\n{output}"
        family = psutil.Process(script.pid).children(recursive=True)
        servers = [process for process in family if SERVER_APP in " ".join(process.cmdline())]
        assert len(servers) == 1, [process.cmdline() for process in family]
        server = servers[0]

        os.kill(script.pid, signal.SIGKILL)
        script.wait()

        assert wait_until(lambda: gone(server.pid), 60), (
            f"the embedded API server (pid {server.pid}) outlived the killed script"
        )
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()
        log.close()
        kill_processes(family)  # the local cluster's processes stop by themselves; no waiting
