"""Outputs users can trust: exactly once, in order, resumable, reusable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from prefect.settings import PREFECT_API_URL

from prefect_parallelrun import FileDataset, ParallelRunStep
from tests.jobs import SCRIPTS, JobBench, kill_processes, worker_killed_once_it_says

pytestmark = pytest.mark.usefixtures("prefect_server")


def expected_rows(count: int) -> list[str]:
    return [f"item-{number:03d}.txt ok" for number in range(count)]


def test_no_duplicate_or_missing_rows_after_retries_and_timeouts(bench: JobBench):
    texts = ["ok"] * 12
    texts[1] = texts[5] = "fail-times 1"
    texts[3] = "fail-times 2"
    bench.items(texts)
    result = bench.run(run_max_try=3, mini_batch_size="2")
    assert result.status == "Completed", result.message
    assert bench.rows() == expected_rows(12)
    statuses = [row["status"] for row in bench.attempt_rows()]
    assert statuses.count("failed") == 4


def test_a_timed_out_attempt_that_succeeds_on_retry_is_written_once(bench: JobBench):
    bench.items(["ok", "sleep-once 600", "ok"])
    result = bench.run(run_max_try=2, run_invocation_timeout=3)
    assert result.status == "Completed", result.message
    assert bench.rows() == expected_rows(3)
    attempts = [row for row in bench.attempt_rows() if row["mini_batch"].startswith("1:")]
    assert [row["status"] for row in attempts] == ["timeout", "succeeded"]


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(bench: JobBench):
    bench.items(["sleep 0.3"] * 6 + ["worker-pid"] + ["sleep 0.3"] * 9)
    pid_file = bench.root / "worker.pid"
    os.environ["WORKER_PID_FILE"] = str(pid_file)
    try:
        with worker_killed_once_it_says(pid_file, timeout=120) as killed:
            result = bench.run(node_count=2, process_count_per_node=1, run_max_try=3)
    finally:
        os.environ.pop("WORKER_PID_FILE")
    assert killed
    assert result.status == "Completed", result.message
    assert result.succeeded_mini_batches == 16
    rows = bench.rows()
    assert rows[:6] == expected_rows(6)
    assert len(rows) == 16 and len(set(rows)) == 16
    assert rows[7:] == expected_rows(16)[7:]


def test_resume_after_a_threshold_abort_runs_only_the_unfinished_mini_batches(bench: JobBench):
    texts = ["ok"] * 10
    texts[4] = "fail-times 1"
    bench.items(texts)
    first = bench.run(error_threshold=0, run_max_try=1, process_count_per_node=1)
    assert first.status == "Failed"
    assert "error_threshold crossed" in first.message
    committed_first = set(_committed_items(bench))
    assert "item-004.txt" not in committed_first
    bench.calls_file.unlink()
    second = bench.run(error_threshold=0, run_max_try=1, process_count_per_node=1)
    assert second.status == "Completed", second.message
    rerun = bench.calls()
    assert set(rerun) == {f"item-{n:03d}.txt" for n in range(10)} - committed_first
    assert all(count == 1 for count in rerun.values())
    assert bench.rows() == expected_rows(10)
    assert second.succeeded_mini_batches == 10


def test_resume_after_the_flow_process_is_killed(bench: JobBench, tmp_path: Path):
    bench.items(["sleep 0.4"] * 14)
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    flow_process = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "run_step.py"), str(bench.inputs), str(bench.output)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    ledger = bench.output / ".parallel_run" / "ledger"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(ledger.glob("*.json"))) < 4:
        time.sleep(0.05)
    family = psutil.Process(flow_process.pid).children(recursive=True)
    flow_process.send_signal(signal.SIGKILL)
    flow_process.wait()
    kill_processes(family)
    committed_first = set(_committed_items(bench))
    assert 4 <= len(committed_first) < 14
    bench.calls_file.unlink()
    result = bench.run()
    assert result.status == "Completed", result.message
    rerun = bench.calls()
    assert set(rerun) == {f"item-{n:03d}.txt" for n in range(14)} - committed_first
    assert all(count == 1 for count in rerun.values())
    uninterrupted = JobBench(tmp_path / "again", pytest.MonkeyPatch())
    uninterrupted.items(["sleep 0.4"] * 14)
    uninterrupted.run()
    assert (bench.output / "parallel_run_step.txt").read_bytes() == (
        uninterrupted.output / "parallel_run_step.txt"
    ).read_bytes()


def test_allow_reuse_returns_the_stored_result_without_running(bench: JobBench):
    bench.items(["ok", "ok", "ok"])
    config = bench.config()
    first = bench.step(config, allow_reuse=True).run()
    assert first.status == "Completed"
    bench.calls_file.unlink()
    started = time.monotonic()
    again = bench.step(config, allow_reuse=True).run()
    assert again == first
    assert not bench.calls_file.exists()
    assert time.monotonic() - started < 20


def test_an_empty_input_succeeds_with_an_empty_output_file(bench: JobBench):
    result = bench.run()
    assert result.status == "Completed"
    assert result.total_mini_batches == 0
    assert "0 mini-batches" in result.message
    assert (bench.output / "parallel_run_step.txt").read_text() == ""


def test_append_row_with_no_succeeded_item_fails_saying_so(bench: JobBench):
    bench.items(["raise", "raise"])
    result = bench.run(run_max_try=1)
    assert result.status == "Failed"
    assert result.message.startswith("No item succeeded")


def test_summary_only_writes_no_data_file_and_may_go_without_output(
    bench: JobBench, monkeypatch: pytest.MonkeyPatch
):
    bench.items(["ok", "ok", "raise"])
    monkeypatch.chdir(bench.root)
    config = bench.config(output_action="summary_only", run_max_try=1)
    step = ParallelRunStep(
        name="counting", parallel_run_config=config,
        inputs=[FileDataset.from_files(str(bench.inputs))], allow_reuse=False,
    )
    result = step.run()
    assert result.status == "Completed"
    assert result.output_file is None
    assert (result.succeeded_items, result.failed_items) == (2, 1)
    logs = Path(result.logs_dir)
    assert logs.is_relative_to(bench.root / "parallel_run_logs")
    assert (logs / "job_result.txt").read_text().startswith("Completed")


def test_a_memory_output_folder_gets_the_rows_and_the_logs(bench: JobBench):
    import fsspec

    bench.items(["ok", "ok", "ok"])
    url = f"memory://outputs/{bench.root.name}"
    result = bench.step(bench.config(), output=url).run()
    assert result.status == "Completed", result.message
    with fsspec.open(f"{url}/parallel_run_step.txt", "r") as file:
        assert file.read().splitlines() == expected_rows(3)
    with fsspec.open(f"{url}/logs/job_result.txt", "r") as file:
        assert file.readline().startswith("Completed")


def _committed_items(bench: JobBench) -> list[str]:
    import json

    ledger = bench.output / ".parallel_run" / "ledger"
    records = [json.loads(path.read_text()) for path in ledger.glob("*.json")]
    indexes = sorted(record["mini_batch_index"] for record in records)
    return [f"item-{index:03d}.txt" for index in indexes]



def test_a_flow_process_killed_outright_leaves_no_local_cluster_behind(bench: JobBench):
    bench.items(["sleep 30"] * 4)
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    flow_process = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "run_step.py"), str(bench.inputs), str(bench.output)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while len(bench.calls()) < 2:  # both entry-script processes are in run()
            assert time.monotonic() < deadline, "the job did not start its mini-batches"
            time.sleep(0.1)
        family = psutil.Process(flow_process.pid).children(recursive=True)
        commands = [" ".join(process.cmdline()) for process in family]
        assert sum("distributed.Scheduler" in command for command in commands) == 1, commands
        assert sum("execute.child" in command for command in commands) == 2, commands
        flow_process.send_signal(signal.SIGKILL)
        flow_process.wait()
        # The scheduler notices its parent has gone and closes; its workers and their
        # entry-script processes go with it, long before the 30 s sleeps end.
        _, alive = psutil.wait_procs(family, timeout=20)
        assert alive == [], [" ".join(process.cmdline()) for process in alive]
    finally:
        flow_process.kill()
        kill_processes(family)
