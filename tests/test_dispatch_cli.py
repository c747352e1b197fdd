"""The prefect-parallelrun command: validate a config, run a job (progress, summary), read an
output folder's status, exit status and stderr."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from prefect.settings import PREFECT_API_URL

from tests.jobs import SCRIPTS, JobBench, kill_processes

PROGRESS_LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] scheduled \d+ of (\d+); processed (\d+) of \1 "
    r"\((\d+) succeeded, (\d+) failed\); estimated time left .+$"
)


def cli(
    *arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prefect_parallelrun.cli", *arguments],
        capture_output=True, text=True, timeout=300, env=env, cwd=cwd,
    )


def write_config(path: Path, **overrides: object) -> Path:
    fields = {
        "source_directory": str(SCRIPTS), "entry_script": "job_behaviours.py",
        "mini_batch_size": "2", "error_threshold": -1, "output_action": "append_row",
        "compute_target": "local", "node_count": 1, "process_count_per_node": 1,
        "environment_variables": {"API_TOKEN": "s3cr3t"},
        **overrides,
    }
    from prefect_parallelrun import ParallelRunConfig

    ParallelRunConfig(**fields).save_to_yaml(path)
    return path


def test_validate_prints_the_config_without_its_secrets(tmp_path: Path):
    completed = cli("validate", str(write_config(tmp_path / "config.yml")))
    assert completed.returncode == 0, completed.stderr
    assert "valid parallel_run_config" in completed.stdout
    assert "entry_script: job_behaviours.py" in completed.stdout
    assert "s3cr3t" not in completed.stdout


def test_validate_names_the_bad_field_on_stderr(tmp_path: Path):
    path = write_config(tmp_path / "config.yml")
    path.write_text(path.read_text().replace("node_count: 1", "node_count: 0"))
    completed = cli("validate", str(path))
    assert completed.returncode == 2
    assert "node_count" in completed.stderr


def run_in_terminal(
    *arguments: str, env: dict[str, str], timeout: float = 300
) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as its stdin, stdout and stderr, as a user's
    shell does; return its exit status and all it wrote to the terminal."""
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect_parallelrun.cli", *arguments],
        stdin=follower, stdout=follower, stderr=follower,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"},
    )
    os.close(follower)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: every process holding the terminal has closed it
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        return process.wait(timeout=30), output.decode("utf-8", errors="replace")
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()


def status(folder: Path) -> subprocess.CompletedProcess:
    return cli("status", str(folder))


@pytest.mark.usefixtures("prefect_server")
def test_run_piped_prints_progress_lines_and_a_summary_and_status_reads_the_folder(
    bench: JobBench,
):
    bench.items(["ok", "ok", "raise", "raise"])
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    config = write_config(bench.root / "config.yml", run_max_try=1)
    completed = cli(
        "run", str(config), "--input", str(bench.inputs), "--output", str(bench.output),
        "--no-reuse", env=environment,
    )
    assert completed.returncode == 0, completed.stderr
    assert bench.rows() == ["item-000.txt ok", "item-001.txt ok"]
    lines = completed.stdout.splitlines()
    progress = [PROGRESS_LINE.match(line) for line in lines if line.startswith("[")]
    assert progress and all(progress), lines
    assert progress[-1].groups() == ("2", "2", "1", "1")  # the last line: the job's end
    assert "Completed: 1 of 2 mini-batches succeeded (2 items succeeded, 2 failed)." in lines
    assert re.search(r"mini-batches +1 +1 +2", completed.stdout), completed.stdout
    assert re.search(r"items +2 +2 +4", completed.stdout), completed.stdout
    assert f"output file: {bench.output / 'parallel_run_step.txt'}" in lines
    assert f"logs:        {bench.output / 'logs'}" in lines
    assert "\x1b[" not in completed.stdout  # no colours or cursor moves in a pipe
    assert completed.stderr == ""  # no library chatter, no ERROR line of a failed attempt

    finished = status(bench.output)
    assert finished.returncode == 0, finished.stderr
    assert "Completed: 1 of 2 mini-batches succeeded" in finished.stdout
    assert "1 mini-batch without a committed result, with the last error of each:" in (
        finished.stdout
    )
    assert re.search(
        r"mini-batch 1 \(1 attempt, failed\): .*ValueError: cannot score item-002.txt",
        finished.stdout,
    ), finished.stdout

    strict = write_config(bench.root / "strict.yml", run_max_try=1, error_threshold=0)
    failed_output = bench.root / "out2"
    completed = cli(
        "run", str(strict), "--input", str(bench.inputs), "--output", str(failed_output),
        env=environment,
    )
    assert completed.returncode == 1
    assert "error_threshold crossed" in completed.stderr
    assert "Failed: The job was aborted" in completed.stdout
    failed = status(failed_output)
    assert failed.returncode == 1
    assert failed.stdout.startswith(f"output folder: {failed_output}\nFailed: The job was")
    assert "cannot score item-002.txt" in failed.stdout


@pytest.mark.usefixtures("prefect_server")
def test_run_on_a_terminal_draws_a_progress_bar_from_a_saved_config_block(bench: JobBench):
    from prefect_parallelrun import ParallelRunConfig

    bench.items(["ok"] * 6)
    block_name = f"cli-test-{uuid.uuid4().hex[:8]}"
    ParallelRunConfig(
        source_directory=str(SCRIPTS), entry_script="job_behaviours.py", mini_batch_size="2",
        error_threshold=-1, output_action="append_row", compute_target="local",
        node_count=1, process_count_per_node=1,
    ).save(block_name)
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    validated = cli("validate", "--config-block", block_name, env=environment)
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.startswith(f"block '{block_name}': valid parallel_run_config\n")
    returncode, screen = run_in_terminal(
        "run", "--config-block", block_name, "--input", str(bench.inputs),
        "--output", str(bench.output), env=environment,
    )
    assert returncode == 0, screen
    assert bench.rows() == [f"item-{number:03d}.txt ok" for number in range(6)]
    assert "\x1b[" in screen  # drawn with colours and cursor moves
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert re.search(r"3/3 mini-batches • 0 failed • [0-9.]+/s • done in \d+:\d\d:\d\d", text), (
        text
    )
    assert "Completed: 3 of 3 mini-batches succeeded" in text
    assert re.search(r"mini-batches +3 +0 +3", text), text
    assert "processed 3 of 3" not in screen  # a bar, not the plain lines
    assert "ERROR" not in screen and "INFO" not in screen


@pytest.mark.usefixtures("prefect_server")
def test_an_unknown_config_block_is_one_line_and_exit_2(tmp_path: Path):
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    completed = cli(
        "run", "--config-block", "no-such-config", "--input", str(tmp_path),
        "--output", str(tmp_path / "out"), env=environment,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        f"error: no ParallelRunConfig block is saved under the name 'no-such-config' on the "
        f"Prefect API at {PREFECT_API_URL.value()}; list the saved ones with 'prefect block "
        f"ls', or save one with config.save('no-such-config')."
    ]
    assert not (tmp_path / "out").exists()


def test_run_needs_exactly_one_of_a_config_file_and_a_config_block(tmp_path: Path):
    config = str(write_config(tmp_path / "config.yml"))
    for arguments in ([], [config, "--config-block", "nightly"]):
        completed = cli("run", *arguments, "--input", str(tmp_path))
        assert completed.returncode == 2
        assert "give exactly one of CONFIG.yml (a YAML file) and --config-block NAME" in (
            completed.stderr
        )


def test_every_command_shows_an_example_in_its_help():
    for command in ([], ["run"], ["validate"], ["status"]):
        completed = cli(*command, "--help")
        assert completed.returncode == 0
        assert "examples:\n  prefect-parallelrun " in completed.stdout, command


def test_status_of_a_folder_that_is_no_output_folder_exits_2(tmp_path: Path):
    completed = status(tmp_path)
    assert completed.returncode == 2
    assert completed.stderr == (
        f"error: {tmp_path} is not the output folder of a parallel run: it holds no "
        f".parallel_run folder. Pass the folder that was given to 'prefect-parallelrun run "
        f"--output'.\n"
    )
    assert status(tmp_path / "missing").returncode == 2


@pytest.mark.usefixtures("prefect_server")
def test_status_of_a_running_job_and_of_one_whose_process_died(bench: JobBench):
    bench.items(["ok", "sleep 300"])
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    flow_process = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "run_step.py"), str(bench.inputs), str(bench.output),
         '{"run_invocation_timeout": 600}'],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        ledger = bench.output / ".parallel_run" / "ledger"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not list(ledger.glob("*.json")):
            assert flow_process.poll() is None, "the job ended before its first commit"
            time.sleep(0.1)
        running = status(bench.output)
        assert running.returncode == 0, running.stderr
        assert f"Running: host {os.uname().nodename}, pid {flow_process.pid}, flow run " in (
            running.stdout
        )
        assert "committed so far: 1 mini-batch (1 item succeeded)" in running.stdout
    finally:
        family = psutil.Process(flow_process.pid).children(recursive=True)
        flow_process.kill()
        flow_process.wait()
        kill_processes(family)
    stopped = status(bench.output)
    assert stopped.returncode == 1
    assert "Stopped: the run that held this folder is gone without finishing (host " in (
        stopped.stdout
    )
    assert "Run the same command again to resume it." in stopped.stdout
    assert "committed so far: 1 mini-batch (1 item succeeded)" in stopped.stdout


@pytest.mark.usefixtures("prefect_server")
def test_run_takes_paths_relative_to_where_it_is_started(bench: JobBench):
    bench.items(["ok"] * 5)
    (bench.root / "scripts").mkdir()
    (bench.root / "scripts" / "score.py").write_text((SCRIPTS / "job_behaviours.py").read_text())
    write_config(bench.root / "config.yml", source_directory="scripts", entry_script="score.py")
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    completed = cli(
        "run", "config.yml", "--input", "inputs", "--output", "out",
        "--mini-batches-per-task", "2", env=environment, cwd=bench.root,
    )
    assert completed.returncode == 0, completed.stderr
    assert (bench.root / "out" / "parallel_run_step.txt").read_text().splitlines() == [
        f"item-{number:03d}.txt ok" for number in range(5)
    ]


def test_run_refuses_a_bad_mini_batches_per_task(tmp_path: Path):
    completed = cli(
        "run", str(write_config(tmp_path / "config.yml")), "--input", str(tmp_path),
        "--output", str(tmp_path / "out"), "--mini-batches-per-task", "0",
    )
    assert completed.returncode == 2
    assert "mini_batches_per_task must be a positive whole number or 'auto'; got 0" in (
        completed.stderr
    )


def test_a_bad_setting_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path):
    env = {**os.environ, "PREFECT_PARALLELRUN_MAX_FAILED_STARTS": "0"}
    config = str(write_config(tmp_path / "config.yml"))
    for arguments in (
        ["status", str(tmp_path)],
        ["run", config, "--input", str(tmp_path), "--output", str(tmp_path / "out")],
    ):
        completed = cli(*arguments, env=env)
        assert completed.returncode == 2, arguments
        assert completed.stderr.startswith(
            "error: Invalid prefect-parallelrun setting: "
            "PREFECT_PARALLELRUN_MAX_FAILED_STARTS='0'"
        ), completed.stderr
        assert len(completed.stderr.splitlines()) == 1, completed.stderr
    assert not (tmp_path / "out").exists()


def test_the_progress_listener_sees_every_finished_mini_batch_and_a_last_snapshot(
    tmp_path: Path,
):
    from prefect_parallelrun.report import JobLogs, ProgressReporter

    seen = []
    reporter = ProgressReporter(
        JobLogs(tmp_path / "logs"), total=5, already_done=2, interval=5.0, with_artifact=False,
        listener=seen.append,
    )
    reporter.scheduled(3)
    reporter.finished(succeeded=True)
    reporter.finished(succeeded=False)
    reporter.close()
    assert [(s.processed, s.succeeded, s.failed, s.finished) for s in seen] == [
        (2, 2, 0, False), (3, 3, 0, False), (4, 3, 1, False), (4, 3, 1, True),
    ]
    last = seen[-1]
    assert last.line() == reporter.line()
    assert last.line().startswith("scheduled 5 of 5; processed 4 of 5 (3 succeeded, 1 failed)")
    assert seen[0].per_second is None and seen[0].seconds_left is None  # nothing ran yet
    assert last.seconds_left == pytest.approx(last.elapsed / 2)  # 2 ran, 1 left


def test_a_progress_listener_that_raises_is_dropped_and_counting_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    from prefect_parallelrun.report import JobLogs, ProgressReporter

    calls = []

    def broken(snapshot) -> None:
        calls.append(snapshot)
        raise RuntimeError("display gone")

    reporter = ProgressReporter(
        JobLogs(tmp_path / "logs"), total=2, already_done=0, interval=5.0, with_artifact=False,
        listener=broken,
    )
    reporter.finished(succeeded=True)
    reporter.finished(succeeded=True)
    reporter.close()
    assert len(calls) == 1
    assert "raised RuntimeError: display gone; progress is no longer shown" in caplog.text
    assert reporter.line().startswith("scheduled 0 of 2; processed 2 of 2 (2 succeeded")
