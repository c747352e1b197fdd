"""Cancelling a job's flow run stops its entry-script processes on the workers."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL

from tests.jobs import (
    SCRIPTS,
    DaskProcesses,
    JobBench,
    settled_task_runs,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("prefect_server")
LOGGER = logging.getLogger("tests.cancel")

# A stuck mini-batch sleeps a minute on its first attempt (within run_invocation_timeout), so
# a job that waited for its running mini-batches instead of stopping them could not end within
# the deadlines below. Dask may start the job's mini-batches in any order.
STUCK = "sleep-once 60"


def start_flow_process(bench: JobBench, address: str, name: str) -> subprocess.Popen:
    overrides = {
        "compute_target": address, "process_count_per_node": 2, "run_invocation_timeout": 120,
    }
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / "run_step.py"), str(bench.inputs), str(bench.output),
         json.dumps(overrides)],
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "STEP_NAME": name},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def committed_items(bench: JobBench) -> set[str]:
    ledger = bench.output / ".parallel_run" / "ledger"
    return {
        f"item-{json.loads(path.read_text())['mini_batch_index']:03d}.txt"
        for path in ledger.glob("*.json")
    }


def slots_stuck(bench: JobBench) -> bool:
    """Both slots run a stuck mini-batch, and every other mini-batch that ran is committed."""
    calls = set(bench.calls())
    running = {name for name in calls if (bench.inputs / name).read_text() == STUCK}
    return len(running) == 2 and committed_items(bench) == calls - running


def committed_rows(bench: JobBench) -> list[str]:
    return [f"{name} ok" for name in sorted(committed_items(bench))]


def assert_processes_stopped(dask_processes: DaskProcesses) -> None:
    """The job's entry-script processes are gone; the Dask workers themselves live on."""
    assert dask_processes.entry_process_pids() == set()
    assert all(worker.poll() is None for worker in dask_processes.workers)


def assert_committed_rows_kept(bench: JobBench, job_result_start: str) -> None:
    """At most the two "ok" items were committed, their rows are written, the reason is said."""
    assert len(committed_items(bench)) <= 2
    assert bench.rows() == committed_rows(bench)
    job_result = (bench.output / "logs" / "job_result.txt").read_text()
    assert job_result.startswith(job_result_start), job_result


def flow_run_named(name: str):
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
        )
    return runs[0] if runs else None


def cancel_from_cli(name: str) -> None:
    """`prefect flow-run cancel <id>` of the flow run named `name`, as a user types it."""
    cancel = subprocess.run(
        [sys.executable, "-m", "prefect", "flow-run", "cancel", str(flow_run_named(name).id)],
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        capture_output=True, text=True, timeout=120,
    )
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr


def test_cancelling_the_flow_run_from_the_cli_stops_the_entry_processes(
    bench: JobBench, dask_processes: DaskProcesses
):
    bench.items(["ok"] * 3 + [STUCK] * 5)
    name = f"cancelled-{uuid.uuid4().hex[:8]}"
    flow_process = start_flow_process(bench, dask_processes.address, name)
    try:
        wait_for(lambda: slots_stuck(bench), 120, "the stuck mini-batches")
        wait_for(lambda: len(dask_processes.entry_process_pids()) == 2, 30, "2 processes")
        cancel_from_cli(name)
        # Polled every 2 s, then killed: well before the 60 s sleeps could have ended.
        assert flow_process.wait(timeout=40) == 1
    finally:
        flow_process.kill()
        flow_process.wait()
    assert_processes_stopped(dask_processes)
    final = flow_run_named(name)
    assert final.state.type == StateType.CANCELLED, final.state
    assert "cancelled" in final.state.message
    job_result = (bench.output / "logs" / "job_result.txt").read_text()
    assert job_result.startswith("Failed: The job was cancelled: this flow run"), job_result
    committed = committed_items(bench)
    by_state = {name: task.state_type for name, task in settled_task_runs(final.id).items()}
    assert {
        name for name, state in by_state.items() if state == StateType.COMPLETED
    } == {f"mini-batch-{int(item[5:8])}" for item in committed}, by_state
    # The two stuck ones, and any that were waiting for a slot: stopped, not failed.
    assert list(by_state.values()).count(StateType.CANCELLED) >= 2, by_state
    assert set(by_state.values()) <= {StateType.COMPLETED, StateType.CANCELLED}, by_state

    assert bench.rows() == committed_rows(bench)
    bench.calls_file.unlink()
    for number in range(8):  # no more minute-long sleeps: each has had its first attempt
        (bench.root / "counters" / f"item-{number:03d}.txt").write_text("1")
    result = bench.run(compute_target=dask_processes.address)
    assert result.status == "Completed", result.message
    rerun = bench.calls()
    assert set(rerun) == {f"item-{n:03d}.txt" for n in range(8)} - committed
    assert all(count == 1 for count in rerun.values())
    assert len(bench.rows()) == 8


def test_sigterm_stops_the_entry_processes_instead_of_draining_them(
    bench: JobBench, dask_processes: DaskProcesses
):
    # A deployment's runner or worker cancels a flow run with SIGTERM.
    bench.items(["ok", "ok"] + [STUCK] * 4)
    flow_process = start_flow_process(bench, dask_processes.address, f"sigterm-{uuid.uuid4()}")
    try:
        wait_for(lambda: slots_stuck(bench), 120, "the stuck mini-batches")
        flow_process.send_signal(signal.SIGTERM)
        flow_process.wait(timeout=30)
    finally:
        flow_process.kill()
        flow_process.wait()
    assert_processes_stopped(dask_processes)
    # What was committed before the signal is written out, and the reason is said.
    assert_committed_rows_kept(
        bench, "Failed: The job was cancelled: the flow process received SIGTERM"
    )


def test_the_cancel_watch_names_a_cancelled_parent_flow_run(prefect_server):
    from prefect import flow
    from prefect.states import Cancelling

    from prefect_parallelrun.dispatch.cancel_watch import CancelWatch

    seen: list[str] = []

    @flow(name="child-of-cancelled")
    def child() -> None:
        from prefect.runtime import flow_run

        with CancelWatch(flow_run.get_id(), seen.append, LOGGER, poll_seconds=0.2):
            wait_for(lambda: bool(seen), 30, "the cancel to be seen")

    @flow(name="parent-to-cancel")
    def parent() -> None:
        from prefect.runtime import flow_run

        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run.get_id(), Cancelling(), force=True)
        child()

    parent(return_state=True)
    assert len(seen) == 1
    assert seen[0].startswith("its parent flow run"), seen
    assert "Cancelling" in seen[0]


def test_a_flow_run_that_is_not_cancelled_is_left_alone(prefect_server):
    from prefect import flow

    from prefect_parallelrun.dispatch.cancel_watch import CancelWatch

    seen: list[str] = []

    @flow(name="not-cancelled")
    def running() -> None:
        from prefect.runtime import flow_run

        with CancelWatch(flow_run.get_id(), seen.append, LOGGER, poll_seconds=0.1):
            time.sleep(1.5)

    assert running(return_state=True).is_completed()
    assert seen == []


def test_a_killed_flow_process_leaves_no_entry_processes_on_the_cluster(
    bench: JobBench, dask_processes: DaskProcesses
):
    # SIGKILL gives the flow no chance to stop its job: the workers notice that its Dask
    # client has gone (checked every 5 s, two misses in a row) and stop the processes.
    bench.items([STUCK] * 4)
    flow_process = start_flow_process(bench, dask_processes.address, f"killed-{uuid.uuid4()}")
    try:
        wait_for(lambda: len(bench.calls()) == 2, 120, "two running mini-batches")
        assert len(dask_processes.entry_process_pids()) == 2
        flow_process.send_signal(signal.SIGKILL)
        flow_process.wait(timeout=10)
    finally:
        flow_process.kill()
        flow_process.wait()
    wait_for(lambda: not dask_processes.entry_process_pids(), 40, "the processes to stop")
    assert all(worker.poll() is None for worker in dask_processes.workers)
    from distributed import Client

    with Client(dask_processes.address, timeout=30) as client:
        plugins = client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.worker_plugins)
        )
    assert not [name for name in plugins if name.startswith("prefect-parallelrun-")], plugins


def test_a_served_deployment_runs_from_its_parameters_and_a_ui_cancel_stops_it(
    bench: JobBench, dask_processes: DaskProcesses
):
    # The UI's run form sends a block reference and JSON inputs; its Cancel button sets
    # Cancelling, and the serving runner then sends SIGTERM to the flow run's process.
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    from prefect_parallelrun import FileDataset

    bench.items(["ok"] * 2 + [STUCK] * 4)
    block_name = f"served-{uuid.uuid4().hex[:8]}"
    config = bench.config(compute_target=dask_processes.address, run_invocation_timeout=120)
    config.save(block_name)
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).parents[1] / "flows" / "parallel_run_deployment.py")],
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with get_client(sync_client=True) as client:
            block = client.read_block_document_by_name(block_name, config.get_block_type_slug())

            def deployment_exists() -> bool:
                try:
                    client.read_deployment_by_name("parallel-run/parallel-run")
                except Exception:
                    return False
                return True

            wait_for(deployment_exists, 120, "the served deployment")
            run = run_deployment(
                "parallel-run/parallel-run",
                parameters={
                    "config": {"$ref": {"block_document_id": str(block.id)}},
                    "inputs": [FileDataset.from_files(str(bench.inputs)).model_dump(mode="json")],
                    "output": str(bench.output),
                    "name": block_name,
                    "allow_reuse": False,
                },
                timeout=0,
            )

            def stuck() -> bool:
                state = client.read_flow_run(run.id).state
                assert not state.is_final(), state  # e.g. parameters the runner cannot read
                return slots_stuck(bench)

            wait_for(stuck, 180, "the stuck mini-batches")
            client.set_flow_run_state(run.id, Cancelling())

            def final_state():
                return client.read_flow_run(run.id).state

            wait_for(lambda: final_state().is_final(), 90, "the run to end")
            assert final_state().type == StateType.CANCELLED, final_state()
    finally:
        stop_process(server, timeout=30)
    assert_processes_stopped(dask_processes)
    assert_committed_rows_kept(bench, "Failed: The job was cancelled")
