"""Helpers for tests that run whole jobs: inputs from item texts, a config, the calls made."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import Log, TaskRun
from prefect.logging.handlers import APILogHandler

from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep
from prefect_parallelrun.report import ParallelRunResult

SCRIPTS = Path(__file__).parent / "scripts"


class JobBench:
    """A folder for one test's job: inputs, output, call log and retry counters."""

    def __init__(self, root: Path, monkeypatch: Any) -> None:
        self.root = root
        self.inputs = root / "inputs"
        self.output = root / "output"
        self.calls_file = root / "calls.txt"
        counters = root / "counters"
        counters.mkdir(parents=True)
        self.inputs.mkdir()
        monkeypatch.setenv("CALLS_FILE", str(self.calls_file))
        monkeypatch.setenv("COUNTER_DIR", str(counters))

    def items(self, texts: list[str]) -> None:
        for number, text in enumerate(texts):
            (self.inputs / f"item-{number:03d}.txt").write_text(text)

    def config(self, **overrides: Any) -> ParallelRunConfig:
        fields: dict[str, Any] = dict(
            source_directory=str(SCRIPTS),
            entry_script="job_behaviours.py",
            mini_batch_size="1",
            error_threshold=-1,
            output_action="append_row",
            compute_target="local",
            node_count=1,
            process_count_per_node=2,
            run_invocation_timeout=30,
            run_max_try=3,
        )
        return ParallelRunConfig(**{**fields, **overrides})

    def step(self, config: ParallelRunConfig, **overrides: Any) -> ParallelRunStep:
        arguments: dict[str, Any] = dict(
            name="test-job",
            parallel_run_config=config,
            inputs=[FileDataset.from_files(str(self.inputs))],
            output=str(self.output),
            allow_reuse=False,
        )
        return ParallelRunStep(**{**arguments, **overrides})

    def run(self, resume: bool = True, **config_overrides: Any) -> ParallelRunResult:
        return self.step(self.config(**config_overrides)).run(resume=resume)

    def rows(self) -> list[str]:
        return (self.output / "parallel_run_step.txt").read_text().splitlines()

    def calls(self) -> Counter[str]:
        """How many run() calls each item was part of."""
        if not self.calls_file.exists():
            return Counter()
        return Counter(
            name for line in self.calls_file.read_text().splitlines() for name in line.split()
        )

    def attempt_rows(self) -> list[dict[str, str]]:
        import csv

        report = self.output / "logs" / "sys" / "job_report" / "processed_mini-batches.csv"
        with report.open() as file:
            return list(csv.DictReader(file))


def process_tree_pids() -> set[int]:
    """Our descendant processes, less multiprocessing's resource tracker: Python starts that
    once per interpreter (LocalCluster's first spawn does) and it lives until exit."""
    import psutil

    pids = set()
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return pids


class DaskProcesses:
    """A `dask scheduler` and `dask worker` processes, as on a real multi-node cluster."""

    def __init__(
        self, folder: Path, workers: int = 1, threads: int = 2,
        extra_args: tuple[str, ...] = (), security: Any = None,
    ) -> None:
        """`extra_args` go to the scheduler and every worker (TLS flags, say); `security` is
        what this helper's own client needs to reach the scheduler then."""
        import subprocess
        import sys
        import time

        self.processes: list[subprocess.Popen] = []
        folder.mkdir(parents=True, exist_ok=True)
        scheduler_file = folder / "scheduler.json"
        dask = [sys.executable, "-m", "dask"]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self._start(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file), *extra_args], quiet,
        )
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            if time.monotonic() > deadline or self.processes[0].poll() is not None:
                self.stop()
                raise RuntimeError("the dask scheduler did not start within 60 s")
            time.sleep(0.1)
        import json

        self.address: str = json.loads(scheduler_file.read_text())["address"]
        self.workers = [
            self._start(
                [*dask, "worker", self.address, "--nthreads", str(threads), "--no-nanny",
                 "--no-dashboard", "--name", f"node-{number}",
                 "--local-directory", str(folder / f"node-{number}"), *extra_args], quiet,
            )
            for number in range(workers)
        ]
        from distributed import Client

        with Client(self.address, timeout=60, security=security) as client:
            client.wait_for_workers(workers, timeout=60)

    def _start(self, command: list[str], quiet: dict) -> Any:
        import subprocess

        process = subprocess.Popen(command, **quiet)
        self.processes.append(process)
        return process

    def entry_process_pids(self) -> set[int]:
        """The entry-script processes running under the workers now."""
        import psutil

        pids = set()
        for worker in self.workers:
            for child in psutil.Process(worker.pid).children(recursive=True):
                try:
                    if "prefect_parallelrun.execute" in " ".join(child.cmdline()):
                        pids.add(child.pid)
                except psutil.NoSuchProcess:
                    continue
        return pids

    def stop(self) -> None:
        """Workers first, then the scheduler."""
        for process in reversed(self.processes):
            stop_process(process, timeout=20)


def kill_processes(processes: list[Any]) -> None:
    """Kill psutil processes we started (the family of a flow process), waiting for them."""
    import psutil

    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(processes, timeout=10)


def stop_process(process: Any, timeout: float) -> None:
    """Terminate a process we started; kill it if it is still there after `timeout` seconds."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def worker_killed_once_it_says(pid_file: Path, timeout: float = 180) -> Iterator[list[int]]:
    """While the body runs, SIGKILL the process whose pid a script writes to `pid_file` (a
    Dask worker, mid-attempt) as soon as it is written; yields the killed pids."""
    killed: list[int] = []

    def kill_when_known() -> None:
        deadline = time.monotonic() + timeout
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_when_known)
    killer.start()
    try:
        yield killed
    finally:
        killer.join()


def wait_until(condition: Callable[[], object], seconds: float, interval: float = 0.2) -> bool:
    """Poll `condition` until it holds (True) or `seconds` have passed (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    """`wait_until`, failing the test ("timed out waiting for <what>") when it does not hold."""
    assert wait_until(condition, seconds, interval=0.1), f"timed out waiting for {what}"


def flow_run_logs(flow_run_id: uuid.UUID) -> list[Log]:
    """The flow run's log records on the API server, once this process has sent them all.

    Prefect sends log records in batches from a background thread (every 2 s by default), so a
    flow run that has just returned may not have all of them on the server yet. A handler's
    flush sends what the process's one log worker holds, and waits for it.
    """
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
    # The engine's last line: checks on what the logs hold must not pass on missing logs.
    assert any(log.message.startswith("Finished in state") for log in logs), [
        log.message for log in logs
    ]
    return logs


def settled_task_runs(flow_run_id: uuid.UUID, seconds: float = 60) -> dict[str, TaskRun]:
    """The flow run's task runs by name, once the server has recorded their last states.

    The server records task runs from the events their engines send, a moment after a flow run
    returns: wait until every task run it knows is in a final state and two reads half a second
    apart agree.
    """
    def read() -> dict[str, TaskRun]:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        return {run.name: run for run in runs}

    def snapshot(runs: dict[str, TaskRun]) -> dict[str, tuple]:
        return {name: (run.state_type, run.run_count) for name, run in runs.items()}

    runs = read()
    deadline = time.monotonic() + seconds
    while True:
        time.sleep(0.5)
        latest = read()
        final = all(run.state is not None and run.state.is_final() for run in latest.values())
        if final and snapshot(latest) == snapshot(runs):
            return latest
        assert time.monotonic() < deadline, f"task runs still changing: {snapshot(latest)}"
        runs = latest
