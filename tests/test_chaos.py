"""A long job survives faults at random moments: a Dask worker killed, an entry-script process
killed, the Prefect API server stopped for 15 s and started again on the same port and database.

The job runs in a process of its own against a `prefect server start` process (SQLite, and once
PostgreSQL), on a `dask scheduler` with 3 `dask worker` processes. Each schedule of faults is
drawn from a seeded random.Random, so a failing seed replays the same schedule.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psutil
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

from prefect_parallelrun.dispatch.api_outage import OUTAGE_WARNING, riding_out_api_outages
from tests.jobs import SCRIPTS, DaskProcesses, JobBench, settled_task_runs, wait_for
from tests.prefect_servers import PostgresCluster, PrefectServer

MINI_BATCHES = 2000
# A few milliseconds of run() each would end the job before the faults; this makes it last
# ~30 s on 3 workers x 2 processes. The outage (15 s, then a restart of 10-25 s) may outlast
# it: then the flow run waits for the server to take its final state.
RUN_SECONDS = 0.06
OUTAGE_SECONDS = 15
SEEDS = [3, 17, 2024]


@pytest.fixture
def postgres() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL cluster. Skipped when Debian's postgresql is not installed,
    except in CI, which installs it (`make system-deps`) and must run the test."""
    try:
        cluster = PostgresCluster()
    except FileNotFoundError as missing:
        if os.environ.get("CI"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))
    with cluster:
        yield cluster


@pytest.mark.parametrize("seed", SEEDS)
def test_a_job_survives_a_lost_worker_a_killed_process_and_an_api_outage(
    bench: JobBench, seed: int
):
    run_chaos_job(bench, seed, database_url=None)


def test_the_same_on_an_api_server_backed_by_postgresql(
    bench: JobBench, postgres: PostgresCluster
):
    run_chaos_job(bench, seed=99, database_url=postgres.url)


def run_chaos_job(bench: JobBench, seed: int, database_url: str | None) -> None:
    for number in range(MINI_BATCHES):
        (bench.inputs / f"item-{number:04d}.txt").write_text(f"sleep {RUN_SECONDS}")
    name = f"chaos-{seed}-{uuid.uuid4().hex[:8]}"
    server = PrefectServer(bench.root / "server", database_url).start()
    orphans: set[int] = set()
    try:
        dask = DaskProcesses(bench.root / "dask", workers=3)
        try:
            flow_process = start_job(bench, server, dask, name)
            try:
                orphans = inject_faults(bench, server, dask, random.Random(seed))
                returncode = flow_process.wait(timeout=600)
            finally:
                flow_process.kill()
                flow_process.wait()
        finally:
            dask.stop()
        output = (bench.root / "flow.out").read_text()
        assert returncode == 0, output[-5000:]
        # A job that succeeds prints no ERROR line while it runs, the outage included. (After
        # an outage, Prefect's events worker may log one as the process exits.)
        job_output = output.partition(f"Flow run {name!r} - Finished in state")[0]
        assert " | ERROR " not in job_output, job_output[-5000:]
        assert bench.rows() == [f"item-{number:04d}.txt ok" for number in range(MINI_BATCHES)]
        assert_flow_run_completed(server, name)
    finally:
        server.stop()
    # The killed worker's entry-script processes notice it and exit.
    gone, alive = psutil.wait_procs(processes(orphans), timeout=30)
    assert not alive, f"entry-script processes left behind by the killed worker: {alive}"


def test_the_events_clients_outage_messages_become_one_warning(
    caplog: pytest.LogCaptureFixture,
):
    events_client = logging.getLogger("prefect.events.clients")
    services = logging.getLogger("prefect._internal.concurrency")
    with caplog.at_level(logging.INFO), riding_out_api_outages(max_retries=8):
        for attempt in range(3):
            try:
                raise ConnectionRefusedError(111, "Connect call failed")
            except ConnectionRefusedError as error:
                events_client.warning(
                    "Unable to connect to %r. Otherwise event data may be lost. Reason: %s.",
                    "ws://127.0.0.1:4200/api/events/in", str(error),
                )
                services.error("Service %r failed to process item %r", "EventsWorker", attempt)
        try:
            raise ValueError("an event too large")
        except ValueError:  # not an outage: said as before
            services.error("Service %r failed to process item %r", "EventsWorker", "big")
    said = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert said == [
        ("WARNING", OUTAGE_WARNING % (
            "ws://127.0.0.1:4200/api/events/in",
            "ConnectionRefusedError: [Errno 111] Connect call failed",
        )),
        ("ERROR", "Service 'EventsWorker' failed to process item 'big'"),
    ]
    left = [type(f).__name__ for f in events_client.filters + services.filters]
    assert "EventsOutageFilter" not in left  # removed when the job ends


def start_job(
    bench: JobBench, server: PrefectServer, dask: DaskProcesses, name: str
) -> subprocess.Popen:
    overrides = {
        "compute_target": dask.address, "node_count": 3, "process_count_per_node": 2,
        "run_invocation_timeout": 60, "run_max_try": 3,
    }
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")},
        "PREFECT_API_URL": server.url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "STEP_NAME": name,
    }
    with (bench.root / "flow.out").open("w") as out:
        return subprocess.Popen(
            [sys.executable, str(SCRIPTS / "run_step.py"), str(bench.inputs),
             str(bench.output), json.dumps(overrides)],
            env=environment, stdout=out, stderr=subprocess.STDOUT,
        )


def inject_faults(
    bench: JobBench, server: PrefectServer, dask: DaskProcesses, schedule: random.Random
) -> set[int]:
    """Once the job runs, each fault at its drawn moment (seconds after the first mini-batch
    started), each in a thread of its own so that the outage does not delay the others.
    Returns the entry-script processes that the killed worker left without a parent."""
    wait_for(lambda: bench.calls_file.exists(), 180, "the job's first mini-batch")
    started = time.monotonic()
    orphans: set[int] = set()
    worker = dask.workers[schedule.randrange(len(dask.workers))]

    def kill_worker() -> None:
        orphans.update(child.pid for child in psutil.Process(worker.pid).children())
        worker.kill()
        worker.wait()

    def kill_entry_process() -> None:
        wait_for(lambda: entry_process_pids(dask), 30, "an entry-script process")
        pids = entry_process_pids(dask)
        with contextlib.suppress(ProcessLookupError):  # it ended a moment ago
            os.kill(pids[int(pick * len(pids))], signal.SIGKILL)

    def outage() -> None:
        server.stop()
        time.sleep(OUTAGE_SECONDS)
        server.start()

    faults = {
        kill_worker: schedule.uniform(2, 20),
        kill_entry_process: schedule.uniform(2, 20),
        outage: schedule.uniform(1, 10),
    }
    pick = schedule.random()  # which live entry-script process, when its moment comes
    errors: list[BaseException] = []

    def run_at(fault: Callable[[], None], at: float) -> None:
        time.sleep(max(0.0, started + at - time.monotonic()))
        try:
            fault()
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=run_at, args=(fault, at), name=fault.__name__)
        for fault, at in faults.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return orphans


def entry_process_pids(dask: DaskProcesses) -> list[int]:
    """The entry-script processes under the live workers, in PID order."""
    pids = []
    for worker in dask.workers:
        try:
            children = psutil.Process(worker.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for child in children:
            try:
                if "prefect_parallelrun.execute" in " ".join(child.cmdline()):
                    pids.append(child.pid)
            except psutil.NoSuchProcess:
                continue
    return sorted(pids)


def assert_flow_run_completed(server: PrefectServer, name: str) -> None:
    """The flow run ended Completed, and so did each of its task runs: the states sent while
    the server was away reached it afterwards."""
    with temporary_settings({PREFECT_API_URL: server.url}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
        )
        assert len(runs) == 1, runs
        assert runs[0].state.type == StateType.COMPLETED, runs[0].state
        states = {task.state_type for task in settled_task_runs(runs[0].id).values()}
        assert states == {StateType.COMPLETED}, states


def processes(pids: set[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return found
