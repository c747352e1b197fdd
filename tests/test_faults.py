"""What a user can get wrong and what can fail, as whole jobs on a real LocalCluster and a real
Prefect server: what the user sees, and what is kept (docs/reliability.md)."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from prefect_parallelrun import ParallelRunConfig
from prefect_parallelrun.commit import OutputFolderNotWritableError
from tests.jobs import SCRIPTS, JobBench

FAULTS = SCRIPTS / "faults"
CANNOT_START = "The job was aborted: the entry script cannot start."

pytestmark = pytest.mark.usefixtures("prefect_server")


def fault_config(bench: JobBench, script: str, **overrides) -> ParallelRunConfig:
    """One process, so that mini-batches run one after another in input order."""
    fields = dict(source_directory=str(FAULTS), entry_script=script, process_count_per_node=1)
    return bench.config(**{**fields, **overrides})


def test_bad_yaml_names_the_line_and_what_to_check(tmp_path: Path):
    path = tmp_path / "config.yml"
    path.write_text(
        "parallel_run_config:\n  entry_script: score.py\n  mini_batch_size: \"10\n"
        "  node_count: 1\n"
    )
    with pytest.raises(ValueError) as raised:
        ParallelRunConfig.load_yaml(None, path)
    message = str(raised.value)
    assert message.startswith(f"{path} is not valid YAML: ")
    assert "while scanning a quoted scalar at line 3, column 20" in message
    assert message.endswith("Check the quotes, brackets and indentation there.")


def test_a_missing_entry_script_is_refused_before_anything_runs(bench: JobBench):
    bench.items(["ok"])
    step = bench.step(fault_config(bench, "no_such_script.py"))
    with pytest.raises(FileNotFoundError) as raised:
        step.run()
    assert str(raised.value) == (
        f"entry_script {FAULTS / 'no_such_script.py'} cannot be read (No such file or "
        f"directory). Check entry_script and source_directory in the ParallelRunConfig."
    )
    assert not bench.output.exists()


def assert_no_traceback_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The job's ERROR lines say what failed and what to do; none carries a traceback."""
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors, "the job logged no ERROR line at all"
    with_traceback = [record.getMessage()[:200] for record in errors if record.exc_info]
    assert not with_traceback, f"ERROR lines with a traceback: {with_traceback}"


def write_syntax_error_script(folder: Path) -> None:
    (folder / "syntax_error.py").write_text("def run(mini_batch)\n    return mini_batch\n")


@pytest.mark.parametrize(
    ("script", "says", "traceback_shows"),
    [
        (
            "import_error.py",
            "Importing the entry script raised ModuleNotFoundError: No module named "
            "'a_module_that_is_not_installed'.",
            "import a_module_that_is_not_installed",
        ),
        (
            "syntax_error.py",
            "Importing the entry script raised SyntaxError: expected ':' (syntax_error.py, "
            "line 1).",
            "def run(mini_batch)",
        ),
        (
            "init_raises.py",
            "init() raised FileNotFoundError: model.pkl not found in the working directory.",
            'raise FileNotFoundError("model.pkl not found in the working directory")',
        ),
    ],
)
def test_a_script_that_cannot_start_stops_the_job_with_its_error(
    bench: JobBench, script: str, says: str, traceback_shows: str,
    caplog: pytest.LogCaptureFixture,
):
    source = bench.root / "scripts"
    source.mkdir()
    if script == "syntax_error.py":
        write_syntax_error_script(source)
    else:
        (source / script).write_text((FAULTS / script).read_text())
    bench.items(["ok", "ok"])
    result = bench.run(
        source_directory=str(source), entry_script=script, process_count_per_node=1,
        run_max_try=3,
    )
    assert result.status == "Failed"
    assert result.message.startswith(CANNOT_START)
    assert says in result.message
    assert "fix the script's import or init() and run the job again" in result.message
    assert result.succeeded_items == 0
    assert bench.calls() == {}
    assert traceback_shows in (bench.output / "logs" / "job_error.txt").read_text()
    assert not list((bench.output / ".parallel_run" / "ledger").glob("*.json"))
    assert_no_traceback_logged(caplog)


def test_an_output_folder_under_a_file_is_refused_naming_it(bench: JobBench):
    bench.items(["ok"])
    blocker = bench.root / "a-file"
    blocker.write_text("not a folder")
    step = bench.step(bench.config(), output=str(blocker / "output"))
    with pytest.raises(OutputFolderNotWritableError) as raised:
        step.run()
    assert str(raised.value).startswith(
        f"The output folder {blocker / 'output'} cannot be created or written "
        f"(NotADirectoryError: "
    )
    assert "check that no part of the path is a file" in str(raised.value)
    assert bench.calls() == {}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs, mounted for the test and unmounted after (needs root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
        capture_output=True, text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (root needed): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_full_disk_during_commit_stops_the_job_and_keeps_what_was_committed(
    bench: JobBench, small_disk: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    output = small_disk / "output"
    monkeypatch.setenv("FILL_PATH", str(small_disk / "filler"))
    monkeypatch.setenv("LEDGER_DIR", str(output / ".parallel_run" / "ledger"))
    monkeypatch.setenv("COMMITTED_BEFORE_FILL", "2")
    bench.items(["ok", "ok", "fill", "ok", "ok"])
    step = bench.step(
        fault_config(bench, "fills_the_disk.py"), output=str(output), mini_batches_per_task=1
    )

    result = step.run()

    assert result.status == "Failed"
    assert result.message.startswith(
        "The job was aborted: the output folder cannot be written: the outcome of mini-batch "
    )
    assert (
        f"could not be written to {output}: OSError: [Errno 28] No space left on device. "
        in result.message
    )
    assert "Mini-batches committed before are kept." in result.message
    assert "run the step again to resume." in result.message
    assert result.succeeded_mini_batches == 2
    ledger = sorted(path.name[:6] for path in (output / ".parallel_run/ledger").glob("*.json"))
    assert ledger == ["000000", "000001"]
    assert set(bench.calls().values()) == {1}  # nothing was retried
    assert not list(output.glob(".*.tmp"))  # no half-written output file
    assert_no_traceback_logged(caplog)

    (small_disk / "filler").unlink()
    resumed = step.run()

    assert resumed.status == "Completed"
    assert (output / "parallel_run_step.txt").read_text().splitlines() == [
        f"item-00{number}.txt ok" for number in range(5)
    ]
    assert (bench.calls()["item-000.txt"], bench.calls()["item-001.txt"]) == (1, 1)


def test_binary_garbage_on_stdout_and_stderr_is_kept_and_the_job_succeeds(bench: JobBench):
    bench.items(["ok", "ok"])
    result = bench.step(fault_config(bench, "binary_output.py")).run()
    assert result.status == "Completed"
    assert bench.rows() == ["item-000.txt ok", "item-001.txt ok"]
    (stdout,) = (bench.output / "logs" / "user" / "stdout").rglob("*.stdout.txt")
    (stderr,) = (bench.output / "logs" / "user" / "stdout").rglob("*.stderr.txt")
    assert b"\xff\xfe\x00\x80" in stdout.read_bytes()
    assert b"\xff\xfe\x00\x80" in stderr.read_bytes()
    assert b"lone surrogate" in stdout.read_bytes()


def test_a_hung_run_that_started_children_is_stopped_with_them(
    bench: JobBench, monkeypatch: pytest.MonkeyPatch
):
    pids_file = bench.root / "child-pids.txt"
    monkeypatch.setenv("CHILD_PIDS_FILE", str(pids_file))
    bench.items(["hang", "ok"])
    result = bench.step(
        fault_config(bench, "fork_and_hang.py", run_invocation_timeout=3, run_max_try=1)
    ).run()
    assert (result.succeeded_mini_batches, result.failed_mini_batches) == (1, 1)
    assert bench.rows() == ["item-001.txt ok"]
    (hung,) = [row for row in bench.attempt_rows() if row["mini_batch"].startswith("0:")]
    assert hung["status"] == "timeout"
    assert "did not return within run_invocation_timeout=3 seconds" in hung["error"]
    children = [int(pid) for pid in pids_file.read_text().split()]
    assert len(children) == 3
    deadline = time.monotonic() + 15
    while (alive := [pid for pid in children if is_running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive, f"children of the hung run still running: {alive}"


def is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_run_that_eats_memory_fails_its_attempt_saying_so_and_the_job_goes_on(
    bench: JobBench, caplog: pytest.LogCaptureFixture
):
    bench.items(["eat", "ok"])
    result = bench.step(fault_config(bench, "memory_eater.py", run_max_try=1)).run()
    assert result.status == "Completed"
    assert (result.succeeded_mini_batches, result.failed_mini_batches) == (1, 1)
    assert bench.rows() == ["item-001.txt ok"]
    (eaten,) = [row for row in bench.attempt_rows() if row["mini_batch"].startswith("0:")]
    assert eaten["status"] == "failed"
    assert "run() ran out of memory (MemoryError). Make mini_batch_size smaller" in (
        eaten["error"]
    )
    assert_no_traceback_logged(caplog)  # the failed task run's line names the error only
