"""Resume after a fix, and one writer per output folder, on whole jobs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from prefect.settings import PREFECT_API_URL

from prefect_parallelrun.commit import CODE, OutputFolderInUseError, ResumeRefusedError
from prefect_parallelrun.dispatch.fingerprint import job_fingerprint
from prefect_parallelrun.dispatch.flow import parallel_run
from prefect_parallelrun.report import ParallelRunResult
from prefect_parallelrun.step import result_of
from tests.jobs import SCRIPTS, JobBench, flow_run_logs, kill_processes

pytestmark = pytest.mark.usefixtures("prefect_server")
KEPT_ROWS_WARNING = "committed mini-batches keep their rows from an earlier version"


def expected_rows(count: int) -> list[str]:
    return [f"item-{number:03d}.txt ok" for number in range(count)]


def copy_of_the_scripts(root: Path) -> Path:
    scripts = root / "scripts"
    scripts.mkdir()
    (scripts / "job_behaviours.py").write_text((SCRIPTS / "job_behaviours.py").read_text())
    return scripts


def run_and_read_logs(bench: JobBench, **config: object) -> tuple[ParallelRunResult, list]:
    """Run the job as `bench.run` does and return its result and its flow run's log records."""
    step = bench.step(bench.config(**config))
    state = parallel_run(
        config=step.parallel_run_config, inputs=step.inputs, output=step.output,
        name=step.name, allow_reuse=False, return_state=True,
    )
    return result_of(state), flow_run_logs(state.state_details.flow_run_id)


def job_result_lines(bench: JobBench) -> list[str]:
    return (bench.output / "logs" / "job_result.txt").read_text().splitlines()


def test_a_fixed_script_resumes_running_only_the_uncommitted_mini_batches_and_warns(
    bench: JobBench,
):
    bench.items(["ok", "raise", "ok", "ok", "raise", "ok"])
    scripts = copy_of_the_scripts(bench.root)
    first = bench.run(source_directory=str(scripts), run_max_try=1)
    assert (first.succeeded_mini_batches, first.failed_mini_batches) == (4, 2)
    script = scripts / "job_behaviours.py"
    broken = 'raise ValueError(f"cannot score {name}")'
    assert broken in script.read_text()
    script.write_text(script.read_text().replace(broken, "pass  # fixed"))
    bench.calls_file.unlink()

    fixed, logs = run_and_read_logs(bench, source_directory=str(scripts), run_max_try=1)

    assert fixed.status == "Completed", fixed.message
    assert fixed.succeeded_mini_batches == 6
    assert bench.calls() == {"item-001.txt": 1, "item-004.txt": 1}
    assert bench.rows() == expected_rows(6)
    warnings = [log for log in logs if KEPT_ROWS_WARNING in log.message]
    assert len(warnings) == 1
    assert warnings[0].level == 30
    assert warnings[0].message.startswith(
        "Resuming with a different entry script, source_directory, arguments or environment "
        "(changed since the last run: entry_script_sha256, source_directory_sha256): "
        "4 committed"
    )
    assert "resume=False" in warnings[0].message
    result_lines = job_result_lines(bench)
    assert result_lines[0].startswith("Completed: 6 of 6 mini-batches succeeded")
    assert result_lines.count(f"warning: {warnings[0].message}") == 1


def test_a_changed_script_is_not_reused_and_resume_false_recomputes_everything(
    bench: JobBench,
):
    bench.items(["ok", "ok", "ok"])
    scripts = copy_of_the_scripts(bench.root)
    config = bench.config(source_directory=str(scripts))
    first = bench.step(config, allow_reuse=True).run()
    assert first.status == "Completed", first.message
    script = scripts / "job_behaviours.py"
    script.write_text(script.read_text() + "\n# changed\n")
    bench.calls_file.unlink()

    again = bench.step(config, allow_reuse=True).run()
    assert again != first
    assert not bench.calls_file.exists()
    assert any(
        line.startswith("warning: ") and f"3 {KEPT_ROWS_WARNING}" in line
        for line in job_result_lines(bench)
    )

    started_over = bench.step(config).run(resume=False)
    assert started_over.status == "Completed", started_over.message
    assert sum(bench.calls().values()) == 3
    assert bench.rows() == expected_rows(3)
    assert not any(line.startswith("warning: ") for line in job_result_lines(bench))


def test_a_changed_input_or_mini_batch_size_is_still_refused_naming_it(bench: JobBench):
    bench.items(["ok", "ok", "ok", "ok"])
    assert bench.run().status == "Completed"
    bench.calls_file.unlink()
    with pytest.raises(ResumeRefusedError, match=r"changed: [^)]*mini_batch_size"):
        bench.run(mini_batch_size="2")
    (bench.inputs / "item-004.txt").write_text("ok")
    with pytest.raises(ResumeRefusedError, match=r"changed: inputs\).*resume=False"):
        bench.run()
    assert not bench.calls_file.exists()
    assert bench.rows() == expected_rows(4)


def test_a_second_run_fails_at_once_naming_the_live_holder_and_a_killed_holder_does_not_block(
    bench: JobBench,
):
    bench.items(["sleep 1"] * 20)
    holder = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "run_step.py"), str(bench.inputs), str(bench.output),
         json.dumps({"process_count_per_node": 1})],
        env={
            **os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
            "STEP_NAME": f"holder-{uuid.uuid4().hex[:8]}",
            "CALLS_FILE": str(bench.root / "holder_calls.txt"),
        },
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    lock = bench.output / ".parallel_run" / "writer.lock"
    ledger = bench.output / ".parallel_run" / "ledger"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(ledger.glob("*.json"))) < 2:
        assert holder.poll() is None, "the holder's job ended early"
        time.sleep(0.1)
    held_by = json.loads(lock.read_text())
    assert held_by["pid"] == holder.pid

    started = time.monotonic()
    with pytest.raises(OutputFolderInUseError) as refused:
        bench.run()
    assert time.monotonic() - started < 60
    message = str(refused.value)
    assert f"host {socket.gethostname()}, pid {holder.pid}, flow run {held_by['run_id']}" in (
        message
    )
    assert "Wait for that run to end or cancel it, or choose another output folder" in message
    assert not bench.calls_file.exists()
    assert holder.poll() is None

    family = psutil.Process(holder.pid).children(recursive=True)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    kill_processes(family)
    assert json.loads(lock.read_text())["pid"] == holder.pid
    committed_by_the_holder = len(list(ledger.glob("*.json")))
    assert 2 <= committed_by_the_holder < 20

    result = bench.run(process_count_per_node=2)
    assert result.status == "Completed", result.message
    assert sum(bench.calls().values()) == 20 - committed_by_the_holder
    assert bench.rows() == [f"item-{number:03d}.txt ok" for number in range(20)]
    assert not lock.exists()


def test_a_helper_file_in_source_directory_is_part_of_the_code(bench: JobBench):
    scripts = copy_of_the_scripts(bench.root)
    helper = scripts / "helpers" / "scoring.py"
    helper.parent.mkdir()
    helper.write_text("THRESHOLD = 1\n")
    config = bench.config(source_directory=str(scripts))
    before = job_fingerprint(config, "inputs", [])

    (scripts / "__pycache__").mkdir()
    (scripts / "__pycache__" / "job_behaviours.cpython-311.pyc").write_bytes(b"\0")
    (scripts / ".notes").write_text("not code")
    (scripts / "old_output" / ".parallel_run").mkdir(parents=True)
    (scripts / "old_output" / "parallel_run_step.txt").write_text("a row\n")
    assert job_fingerprint(config, "inputs", []) == before

    helper.write_text("THRESHOLD = 2\n")
    after = job_fingerprint(config, "inputs", [])
    assert {key: value for key, value in after.items() if key != CODE} == {
        key: value for key, value in before.items() if key != CODE
    }
    assert after[CODE]["source_directory_sha256"] != before[CODE]["source_directory_sha256"]
    assert after[CODE]["entry_script_sha256"] == before[CODE]["entry_script_sha256"]


def test_arguments_and_the_script_are_code_and_the_layout_is_not(bench: JobBench):
    config = bench.config()
    base = job_fingerprint(config, "inputs", ["--model", "a"])
    with_other_arguments = job_fingerprint(config, "inputs", ["--model", "b"])
    assert base[CODE]["arguments"] != with_other_arguments[CODE]["arguments"]
    assert {key for key in base if base[key] != with_other_arguments[key]} == {CODE}
    assert set(base) == {
        "inputs", "output_action", "mini_batch_size", "partition_keys", "append_row_file_name",
        CODE,
    }
    without_source_directory = job_fingerprint(
        bench.config(source_directory=None, entry_script=str(SCRIPTS / "job_behaviours.py")),
        "inputs", [],
    )
    assert without_source_directory[CODE]["source_directory_sha256"] is None

