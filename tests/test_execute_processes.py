"""Entry-script processes on real Dask workers: start, run, time out, crash, drain and stop."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
from distributed import Client, LocalCluster

from prefect_parallelrun.execute.environment import MissingPackagesError, check_environment
from prefect_parallelrun.execute.job import (
    JobNotRunningError,
    drain_job,
    job_process_ids,
    run_attempt,
    start_job,
    stop_job,
)
from prefect_parallelrun.execute.process_spec import DEFAULT_MINI_BATCH_READER, ProcessSpec
from prefect_parallelrun.execute.results import AttemptResult

# Several clusters in one test process compete for the default HTTP port; only noise.
pytestmark = pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning")

SCRIPTS = Path(__file__).parent / "scripts"
# The workers unpickle the stand-in mini-batches, and spawned workers inherit this sys.path.
sys.path.insert(0, str(SCRIPTS))
from stand_in_batches import StandInMiniBatch  # noqa: E402

STAND_IN_READER = "stand_in_batches:open_stand_in"
SECRET = "s3cr3t-token-value"


def job_processes(job_id: str) -> list[psutil.Process]:
    """Every entry-script process of `job_id` on this machine, whoever its parent is now."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "prefect_parallelrun.execute.child" in command and job_id in command:
            found.append(process)
    return found


def wait_until_gone(job_id: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while job_processes(job_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job_processes(job_id) == [], f"entry-script processes of {job_id} outlived the test"


def new_descendants(before: set[int]) -> list[psutil.Process]:
    """Child processes started since `before`, but multiprocessing's resource tracker, which
    the first spawned worker starts and which lives as long as the test process."""
    return [
        process
        for process in psutil.Process().children(recursive=True)
        if process.pid not in before
        and "multiprocessing.resource_tracker" not in " ".join(process.cmdline())
    ]


def cluster_client(**cluster_kwargs: Any) -> Iterator[Client]:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            dashboard_address=None,
            **cluster_kwargs,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
    _, alive = psutil.wait_procs(new_descendants(before), timeout=10)
    assert alive == [], "the cluster left processes behind"


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    yield from cluster_client()


@pytest.fixture(scope="module")
def gpu_client() -> Iterator[Client]:
    """A worker that sees two GPUs (as CUDA_VISIBLE_DEVICES says; no GPU is used)."""
    yield from cluster_client(env={"CUDA_VISIBLE_DEVICES": "4,5"})


class Job:
    """A started job for one test, with helpers to make mini-batches and run them."""

    def __init__(self, client: Client, folder: Path, spec: ProcessSpec):
        self.client = client
        self.folder = folder
        self.spec = spec
        self._count = 0

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    def mini_batch(
        self, *item_texts: str, partition: dict[str, str] | None = None
    ) -> StandInMiniBatch:
        self._count += 1
        paths = []
        for number, text in enumerate(item_texts):
            path = self.folder / f"mb{self._count}-item{number}.txt"
            path.write_text(text)
            paths.append(str(path))
        return StandInMiniBatch(self._count, f"mb-{self._count:04d}", tuple(paths), partition)

    def run(self, *item_texts: str, attempt: int = 1) -> AttemptResult:
        return self.submit(self.mini_batch(*item_texts), attempt).result()

    def submit(self, mini_batch: Any, attempt: int = 1) -> Any:
        return self.client.submit(run_attempt, self.job_id, mini_batch, attempt, pure=False)

    def notes(self) -> list[tuple[str, int]]:
        notes = self.folder / "notes.txt"
        lines = notes.read_text().splitlines() if notes.exists() else []
        return [(line.rsplit(" ", 1)[0], int(line.rsplit(" ", 1)[1])) for line in lines]

    def pids(self) -> set[int]:
        return {pid for pids in job_process_ids(self.client, self.job_id).values() for pid in pids}


@pytest.fixture
def start(client: Client, tmp_path: Path) -> Iterator[Callable[..., Job]]:
    """Start a job of `behaviours.py` (or another script); stop it after the test."""
    started: list[Job] = []

    def start_with(**overrides: Any) -> Job:
        settings: dict[str, Any] = {
            "job_id": f"test-{uuid.uuid4().hex[:8]}",
            "entry_script": "behaviours.py",
            "source_directory": str(SCRIPTS),
            "arguments": ["--greeting", "hi", "--not-for-the-script", "x"],
            "environment_variables": {
                "SECRET_TOKEN": SECRET,
                "NOTES_FILE": str(tmp_path / "notes.txt"),
            },
            "output_dir": str(tmp_path / "output"),
            "logs_dir": str(tmp_path / "logs"),
            "staging_dir": str(tmp_path / "staging"),
            "output_action": "append_row",
            "run_invocation_timeout": 30.0,
            "process_count_per_node": 1,
            "mini_batch_reader": STAND_IN_READER,
        }
        job_client = overrides.pop("client", client)
        settings["environment_variables"] |= overrides.pop("extra_environment", {})
        spec = ProcessSpec(**(settings | overrides))
        start_job(job_client, spec)
        job = Job(job_client, tmp_path, spec)
        started.append(job)
        return job

    yield start_with
    for job in started:
        stop_job(job.client, job.job_id)
        wait_until_gone(job.job_id)


def staged_lines(result: AttemptResult) -> list[str]:
    assert result.staged_rows is not None
    return Path(result.staged_rows.removeprefix("file://")).read_text().splitlines()


def test_init_runs_once_per_process_and_shutdown_once_on_drain(start: Callable[..., Job]) -> None:
    job = start(process_count_per_node=2)
    futures = [job.submit(job.mini_batch("ok", "ok")) for _ in range(8)]
    results = [future.result() for future in futures]

    assert all(result.status == "succeeded" for result in results)
    assert {result.process for result in results} <= {"process000", "process001"}
    pids = job.pids()
    inits = [pid for event, pid in job.notes() if event == "init"]
    assert sorted(inits) == sorted(pids) and len(pids) == 2

    assert drain_job(job.client, job.job_id) == []
    shutdowns = [pid for event, pid in job.notes() if event == "shutdown"]
    assert sorted(shutdowns) == sorted(pids)
    wait_until_gone(job.job_id, seconds=2)


def test_the_script_runs_as_it_would_on_azure_ml(start: Callable[..., Job], tmp_path: Path) -> None:
    job = start()
    result = job.run("facts")

    facts = json.loads(staged_lines(result)[0])
    assert facts["secret"] == SECRET
    assert facts["argv"] == [
        str(SCRIPTS / "behaviours.py"),
        "--greeting",
        "hi",
        "--not-for-the-script",
        "x",
    ]
    assert facts["greeting"] == "hi"  # argparse.parse_known_args works
    assert facts["output_path"] == facts["output_dir"] == str(tmp_path / "output")
    assert facts["agent_name"] == f"{result.node}.{result.process}"
    assert facts["log_dir"] == str(tmp_path / "logs" / "user" / "entry_script_log" / result.node)
    cwd = Path(facts["cwd"])
    assert cwd.is_dir() and not cwd.is_relative_to(tmp_path) and list(cwd.iterdir()) == []

    drain_job(job.client, job.job_id)
    assert not cwd.exists(), "the private working directory outlived its process"


def test_a_planned_mini_batch_is_read_by_the_plan_and_run_with_its_context(
    start: Callable[..., Job], tmp_path: Path
) -> None:
    from prefect_parallelrun.plan import MiniBatch

    files = [tmp_path / "a.png", tmp_path / "b.png"]
    for file in files:
        file.write_bytes(b"image")
    mini_batch = MiniBatch.create(
        index=7,
        input_name="images",
        kind="files",
        partition_key_value={"user": "ann"},
        item_count=2,
        files=tuple(str(file) for file in files),
    )
    job = start(entry_script="with_context.py", mini_batch_reader=DEFAULT_MINI_BATCH_READER)
    result = job.submit(mini_batch).result()

    assert result.status == "succeeded", result.error
    assert (result.mini_batch_id, result.mini_batch_index) == (mini_batch.id, 7)
    assert staged_lines(result) == ["7 user=ann a.png", "7 user=ann b.png"]


def test_secrets_stay_out_of_reprs_results_and_logs(
    start: Callable[..., Job], tmp_path: Path
) -> None:
    job = start()
    results = [job.run("facts"), job.run("raise"), job.run("log"), job.run("exit 1")]
    drain_job(job.client, job.job_id)

    assert SECRET not in repr(job.spec)
    assert all(SECRET not in repr(result) for result in results)
    for path in (tmp_path / "logs").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(), f"the secret leaked into {path}"


def test_script_logs_reach_the_result_and_the_per_process_files(
    start: Callable[..., Job], tmp_path: Path
) -> None:
    job = start()
    result = job.run("log")

    assert result.log_records == [("WARNING", "scoring mb1-item0.txt")]
    stdout_base = tmp_path / "logs" / "user" / "stdout" / result.node / result.process
    assert "stdout of mb1-item0.txt" in Path(f"{stdout_base}.stdout.txt").read_text()
    assert "stderr of mb1-item0.txt" in Path(f"{stdout_base}.stderr.txt").read_text()
    log_file = (
        tmp_path / "logs" / "user" / "entry_script_log" / result.node / f"{result.process}.log.txt"
    )
    log_text = log_file.read_text()
    assert "init done" in log_text and "scoring mb1-item0.txt" in log_text
    assert "debug line" not in log_text


def test_timeout_stops_a_hung_run_and_the_next_mini_batch_gets_a_new_process(
    start: Callable[..., Job],
) -> None:
    job = start(run_invocation_timeout=2.0)
    job.run("ok")  # the process has started and run init()
    first_pid = job.pids().pop()

    began = time.monotonic()
    timed_out = job.run("sleep 600")
    assert time.monotonic() - began < 6
    assert timed_out.status == "timeout" and timed_out.failed_items == 1
    assert "run_invocation_timeout=2 seconds" in timed_out.error
    assert timed_out.mini_batch_id in timed_out.error
    assert (
        not psutil.pid_exists(first_pid)
        or psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
    )

    after = job.run("ok")
    assert after.status == "succeeded" and after.process == timed_out.process
    inits = [pid for event, pid in job.notes() if event == "init"]
    assert len(inits) == 2 and inits[1] != first_pid


def test_a_process_that_dies_fails_only_its_own_attempt(start: Callable[..., Job]) -> None:
    job = start(process_count_per_node=2)
    slow = job.submit(job.mini_batch("sleep 1.5", "ok"))
    died = job.run("exit 3", "ok")

    assert died.status == "process_died" and "exit code 3" in died.error
    assert died.items == 2 and died.failed_items == 2
    assert slow.result().status == "succeeded"
    assert job.run("ok").status == "succeeded"


def test_a_process_killed_by_a_signal_says_which(start: Callable[..., Job]) -> None:
    job = start()
    job.run("ok")
    pending = job.submit(job.mini_batch("sleep 600"))
    time.sleep(0.5)
    for pid in job.pids():
        os.kill(pid, signal.SIGKILL)  # as the out-of-memory killer would

    result = pending.result(timeout=10)
    assert result.status == "process_died" and "SIGKILL" in result.error


def test_run_must_return_a_list_tuple_or_dataframe(start: Callable[..., Job]) -> None:
    job = start()
    result = job.run("return-none", "ok")

    assert result.status == "failed"
    assert (
        "run() returned None" in result.error and "list, tuple or pandas DataFrame" in result.error
    )
    assert result.failed_items == 2 and result.staged_rows is None


def test_a_long_result_is_truncated_and_a_short_one_counts_failed_items(
    start: Callable[..., Job],
) -> None:
    job = start()
    long = job.run("double")
    assert long.status == "succeeded" and long.succeeded_items == 1
    assert staged_lines(long) == ["mb1-item0.txt first"]
    assert "the last 1 were dropped" in long.warnings[0]

    short = job.run("ok", "skip", "skip")
    assert short.status == "succeeded"
    assert (short.items, short.succeeded_items, short.failed_items) == (3, 1, 2)
    assert "the other 2 items count as failed" in short.warnings[0]


def test_an_exception_in_run_fails_the_attempt_with_the_scripts_traceback(
    start: Callable[..., Job],
) -> None:
    job = start()
    result = job.run("ok", "raise")

    assert result.status == "failed" and not result.fatal
    assert "run() raised ValueError: cannot score mb1-item1.txt" in result.error
    assert "behaviours.py" in result.traceback and "child.py" not in result.traceback
    assert result.mini_batch_id in result.error and "process00" in result.error


def test_an_unreadable_mini_batch_fails_its_attempt(start: Callable[..., Job]) -> None:
    job = start()
    missing = StandInMiniBatch(99, "mb-missing", ("/no/such/file.txt",))
    result = job.submit(missing).result()

    assert result.status == "failed" and "Reading the mini-batch's input failed" in result.error
    assert job.run("ok").status == "succeeded"


def test_init_failing_three_times_in_a_row_is_fatal(start: Callable[..., Job]) -> None:
    job = start(extra_environment={"FAIL_INIT": "1"})
    results = [job.run("ok", attempt=attempt) for attempt in (1, 2, 3)]

    assert [result.status for result in results] == ["init_failed"] * 3
    assert [result.fatal for result in results] == [False, False, True]
    assert "init() raised RuntimeError: init failed on purpose" in results[0].error
    assert "behaviours.py" in results[0].traceback
    assert "failed to start 3 times in a row" in results[2].error


def test_an_init_that_takes_too_long_is_a_failed_start(start: Callable[..., Job]) -> None:
    job = start(init_timeout=1.0, extra_environment={"INIT_SLEEP": "600"})
    result = job.run("ok")

    assert result.status == "init_failed" and not result.fatal
    assert "init() did not return within init_timeout=1 seconds" in result.error


def test_drain_reports_a_failing_shutdown(start: Callable[..., Job]) -> None:
    job = start(extra_environment={"FAIL_SHUTDOWN": "1"})
    job.run("ok")

    problems = drain_job(job.client, job.job_id)
    assert len(problems) == 1
    assert "process000: shutdown() raised RuntimeError: shutdown failed on purpose" in problems[0]
    assert "behaviours.py" in problems[0]


def test_a_script_without_run_cannot_start(start: Callable[..., Job]) -> None:
    job = start(entry_script="no_run.py")
    result = job.run("ok")

    assert result.status == "init_failed" and "has no run() function" in result.error


def test_stop_job_kills_running_mini_batches_and_what_they_started(
    start: Callable[..., Job],
) -> None:
    job = start(process_count_per_node=2, run_invocation_timeout=600.0)
    running = [job.submit(job.mini_batch("spawn-sleeper")) for _ in range(2)]
    deadline = time.monotonic() + 15
    while len([e for e, _ in job.notes() if e.startswith("sleeper")]) < 2:
        assert time.monotonic() < deadline, "the sleepers never started"
        time.sleep(0.05)
    sleepers = [int(event.split()[1]) for event, _ in job.notes() if event.startswith("sleeper")]

    began = time.monotonic()
    stop_job(job.client, job.job_id)
    results = [future.result(timeout=10) for future in running]
    assert time.monotonic() - began < 3

    assert all(r.status == "failed" and "the job was stopped" in r.error for r in results)
    wait_until_gone(job.job_id, seconds=2)
    _, alive = psutil.wait_procs(
        [psutil.Process(pid) for pid in sleepers if psutil.pid_exists(pid)], timeout=3
    )
    assert alive == []
    with pytest.raises(JobNotRunningError):
        job.run("ok")


def test_missing_packages_are_named_before_the_first_mini_batch(client: Client) -> None:
    assert check_environment(client, ["psutil>=5", "pandas"]) == ["psutil>=5", "pandas"]
    with pytest.raises(MissingPackagesError) as failure:
        check_environment(client, ["psutil", "surely-not-a-package-xyz", "pandas>=999"])

    message = str(failure.value)
    assert "surely-not-a-package-xyz (not installed)" in message
    assert "pandas>=999 (installed: " in message and "psutil" not in message.split("(pip")[0]


def test_a_worker_without_the_required_packages_fails_fast(start: Callable[..., Job]) -> None:
    job = start(requirements=["surely-not-a-package-xyz"])
    result = job.run("ok")

    assert result.status == "init_failed" and result.fatal
    assert "surely-not-a-package-xyz" in result.error
    assert job.pids() == set()


def test_run_attempt_for_a_job_that_was_never_started_raises(client: Client) -> None:
    mini_batch = StandInMiniBatch(0, "mb-0", ())
    with pytest.raises(JobNotRunningError, match="never started"):
        client.submit(run_attempt, "no-such-job", mini_batch, 1, pure=False).result()


def test_waiting_for_a_free_slot_is_not_part_of_the_timeout(start: Callable[..., Job]) -> None:
    job = start(run_invocation_timeout=2.0)
    job.run("ok")
    with ThreadPoolExecutor(2) as pool:
        # Two Dask threads, one slot: the second mini-batch waits ~1.5 s before it starts.
        results = list(pool.map(lambda text: job.run(text), ["sleep 1.5", "sleep 1.5"]))

    assert [result.status for result in results] == ["succeeded", "succeeded"]


def test_each_process_gets_its_own_gpu_by_default(
    start: Callable[..., Job], gpu_client: Client
) -> None:
    job = start(client=gpu_client, process_count_per_node=None)
    futures = [job.submit(job.mini_batch("sleep 0.5", "facts")) for _ in range(2)]
    results = [future.result() for future in futures]

    devices = {r.process: json.loads(staged_lines(r)[1])["cuda"] for r in results}
    assert devices == {"process000": "4", "process001": "5"}


def test_cuda_visible_devices_in_the_config_wins(
    start: Callable[..., Job], gpu_client: Client
) -> None:
    job = start(client=gpu_client, extra_environment={"CUDA_VISIBLE_DEVICES": "7"})
    result = job.run("facts")

    assert json.loads(staged_lines(result)[0])["cuda"] == "7"


def test_processes_exit_when_their_worker_dies(
    start: Callable[..., Job], gpu_client: Client
) -> None:
    job = start(client=gpu_client, process_count_per_node=2)
    job.run("ok")
    deadline = time.monotonic() + 10
    while len(job_processes(job.job_id)) < 2:
        assert time.monotonic() < deadline, "the processes never started"
        time.sleep(0.05)
    orphans = job_processes(job.job_id)

    for worker_pid in gpu_client.run(os.getpid).values():
        os.kill(worker_pid, signal.SIGKILL)

    _, alive = psutil.wait_procs(orphans, timeout=5)
    assert alive == [], "entry-script processes outlived their worker"
