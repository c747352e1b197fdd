"""A user's plain script: top-level code, no main guard, relative paths, Prefect's embedded API.

These run without the test server: the script starts Prefect's embedded server itself, as it
does on a user's machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each starts Prefect's embedded server and a job

PLAIN_SCRIPT = """\
from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep

print("SCRIPT STARTED")
config = ParallelRunConfig(entry_script="score.py", source_directory="scripts",
                           mini_batch_size="2", error_threshold=0, output_action="append_row",
                           compute_target="local", node_count=1, process_count_per_node=2)
step = ParallelRunStep(name="plain-user", parallel_run_config=config,
                       inputs=[FileDataset.from_files("items").as_named_input("items")],
                       output="out")
print("RESULT", step.run().status)
"""

SCORE = """\
import os

def run(mini_batch):
    return [os.path.basename(path) for path in mini_batch]
"""


def embedded_environment(**extra: str) -> dict[str, str]:
    """This environment without a server URL, so that Prefect starts its embedded server."""
    environment = {
        name: value for name, value in os.environ.items()
        if name not in ("PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED")
    }
    return {**environment, "PREFECT_HOME": extra.pop("PREFECT_HOME"), **extra}


def write_plain_job(folder: Path, job: str, entry_scripts: dict[str, str], items: int) -> None:
    """A user's folder: `job.py`, `scripts/` with the entry scripts, `items/item_<nn>.txt`."""
    (folder / "scripts").mkdir()
    for name, text in entry_scripts.items():
        (folder / "scripts" / name).write_text(text)
    (folder / "items").mkdir()
    for number in range(items):
        (folder / "items" / f"item_{number:02d}.txt").write_text(str(number))
    (folder / "job.py").write_text(job)


def test_a_plain_script_runs_one_job_quietly_on_the_local_cluster(tmp_path: Path):
    write_plain_job(tmp_path, PLAIN_SCRIPT, {"score.py": SCORE}, items=5)
    done = subprocess.run(
        [sys.executable, "job.py"], cwd=tmp_path, capture_output=True, text=True, timeout=240,
        env=embedded_environment(PREFECT_HOME=str(tmp_path / "prefect-home")),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # Run once: the workers never imported the script again, nor started a flow run.
    assert output.count("SCRIPT STARTED") == 1, output
    assert [line for line in output.splitlines() if line.startswith("RESULT")] == [
        "RESULT Completed"
    ], output
    assert (tmp_path / "out" / "parallel_run_step.txt").read_text().splitlines() == [
        f"item_{number:02d}.txt" for number in range(5)
    ]
    noise = [
        line for line in output.splitlines()
        if "| ERROR" in line or "distributed." in line or " - INFO - " in line
    ]
    assert noise == [], output


def test_the_embedded_server_batches_task_runs_and_keeps_what_the_user_set(tmp_path: Path):
    probe = (
        "import psutil\n"
        "from prefect.server.api.server import SubprocessASGIServer\n"
        "from prefect_parallelrun.dispatch.embedded_api import start_embedded_api\n"
        "assert start_embedded_api()\n"
        "assert not start_embedded_api()  # already running\n"
        "server = psutil.Process(SubprocessASGIServer().server_process.pid).environ()\n"
        "for name in ('BATCH_SIZE', 'FLUSH_INTERVAL'):\n"
        "    print(name, server['PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_' + name])\n"
        "print('ANALYTICS', server['PREFECT_SERVER_ANALYTICS_ENABLED'])\n"
        "SubprocessASGIServer().stop()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=180,
        env=embedded_environment(
            PREFECT_HOME=str(tmp_path / "prefect-home"),
            PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL="3",
        ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["BATCH_SIZE 100", "FLUSH_INTERVAL 3.0", "ANALYTICS False"]
