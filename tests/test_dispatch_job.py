"""Whole jobs on a real LocalCluster and a real Prefect server: retries, timeouts, thresholds."""

from __future__ import annotations

import time

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentTaskRunId

from tests.jobs import JobBench

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_every_item_is_written_once_in_input_order(bench: JobBench):
    bench.items([f"row r{number}" for number in range(12)])
    result = bench.run(mini_batch_size="5")
    assert result.status == "Completed"
    assert bench.rows() == [f"r{number}" for number in range(12)]
    assert (result.total_mini_batches, result.succeeded_mini_batches) == (3, 3)
    assert (result.total_items, result.succeeded_items, result.failed_items) == (12, 12, 0)
    assert result.output_file == str(bench.output / "parallel_run_step.txt")


def test_each_retry_is_an_attempt_and_a_healed_mini_batch_succeeds(bench: JobBench):
    bench.items(["ok", "fail-times 2", "ok"])
    result = bench.run(run_max_try=3)
    assert result.status == "Completed"
    assert result.succeeded_mini_batches == 3
    attempts = [row for row in bench.attempt_rows() if row["mini_batch"].startswith("1:")]
    assert [(row["attempt"], row["status"]) for row in attempts] == [
        ("1", "failed"), ("2", "failed"), ("3", "succeeded"),
    ]
    assert bench.rows() == ["item-000.txt ok", "item-001.txt ok", "item-002.txt ok"]
    assert "failed on purpose, attempt 1" in (bench.output / "logs" / "job_error.txt").read_text()


def test_a_mini_batch_failing_every_attempt_is_failed_and_listed(bench: JobBench):
    bench.items(["ok", "raise", "ok"])
    result = bench.run(run_max_try=2)
    assert result.status == "Completed"
    assert (result.succeeded_mini_batches, result.failed_mini_batches) == (2, 1)
    assert (result.succeeded_items, result.failed_items) == (2, 1)
    assert bench.calls()["item-001.txt"] == 2
    failed_items = (bench.output / "logs" / "failed_items.txt").read_text().splitlines()
    assert failed_items == [str(bench.inputs / "item-001.txt")]
    assert bench.rows() == ["item-000.txt ok", "item-002.txt ok"]


def test_a_hung_run_is_stopped_at_the_timeout_and_the_job_goes_on(bench: JobBench):
    bench.items(["sleep 600", "ok", "ok"])
    started = time.monotonic()
    result = bench.run(run_invocation_timeout=2, run_max_try=1)
    assert time.monotonic() - started < 120
    assert (result.succeeded_mini_batches, result.failed_mini_batches) == (2, 1)
    (hung,) = [row for row in bench.attempt_rows() if row["mini_batch"].startswith("0:")]
    assert hung["status"] == "timeout"
    assert float(hung["seconds"]) < 10


def test_os_exit_fails_only_that_attempt(bench: JobBench):
    bench.items(["exit 3", "ok", "ok", "ok"])
    result = bench.run(run_max_try=1)
    assert (result.succeeded_mini_batches, result.failed_mini_batches) == (3, 1)
    statuses = {row["mini_batch"][:1]: row["status"] for row in bench.attempt_rows()}
    assert statuses == {"0": "process_died", "1": "succeeded", "2": "succeeded", "3": "succeeded"}


@pytest.mark.parametrize(("failing", "aborts"), [(2, False), (3, True)])
def test_error_threshold_boundary(bench: JobBench, failing: int, aborts: bool):
    bench.items(["raise"] * failing + ["ok"] * 3)
    result = bench.run(error_threshold=2, run_max_try=1, process_count_per_node=1)
    if aborts:
        assert result.status == "Failed"
        assert "error_threshold crossed: 3 failed items > error_threshold 2." in result.message
    else:
        assert result.status == "Completed", result.message
        assert result.failed_items == 2


@pytest.mark.parametrize(("failing", "aborts"), [(1, False), (2, True)])
def test_allowed_failed_count_boundary(bench: JobBench, failing: int, aborts: bool):
    bench.items(["raise"] * failing + ["ok"] * 2)
    result = bench.run(allowed_failed_count=1, run_max_try=1, process_count_per_node=1)
    assert (result.status == "Failed") is aborts, result.message
    if aborts:
        assert "allowed_failed_count crossed: 2 mini-batches" in result.message


@pytest.mark.parametrize(("failing", "aborts"), [(1, False), (2, True)])
def test_allowed_failed_percent_boundary(bench: JobBench, failing: int, aborts: bool):
    bench.items(["raise"] * failing + ["ok"] * (4 - failing))
    result = bench.run(allowed_failed_percent=25, run_max_try=1)
    assert (result.status == "Failed") is aborts, result.message
    if aborts:
        assert "allowed_failed_percent crossed: 2 of 4 mini-batches failed (50.00%)" in (
            result.message
        )


def test_an_aborted_flow_run_ends_failed_with_a_named_state(bench: JobBench):
    bench.items(["raise", "raise", "ok"])
    step = bench.step(bench.config(error_threshold=0, run_max_try=1, process_count_per_node=1))
    from prefect_parallelrun.dispatch.flow import parallel_run

    state = parallel_run(
        config=step.parallel_run_config, inputs=step.inputs, output=step.output,
        allow_reuse=False, return_state=True,
    )
    assert state.is_failed()
    assert state.name == "ThresholdExceeded"
    assert "error_threshold crossed: 1 failed items > error_threshold 0." in state.message
    assert (bench.output / "logs" / "job_result.txt").read_text().startswith(
        "Failed: The job was aborted: error_threshold crossed"
    )


def test_the_step_runs_as_a_subflow_inside_a_user_flow(bench: JobBench):
    bench.items(["ok", "ok"])
    step = bench.step(bench.config())

    @flow(name="nightly")
    def nightly():
        return step.run()

    state = nightly(return_state=True)
    result = state.result()
    assert result.status == "Completed"
    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(state.state_details.flow_run_id)
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=False)
            )
        )
    assert any(
        child.name == "test-job" and child.state.is_completed() for child in children
    ), [child.name for child in children]
    assert parent.state.is_completed()


def test_the_jobs_logging_level_does_not_outlive_the_job(bench: JobBench):
    import logging

    bench.items(["ok"])
    flow_runs = logging.getLogger("prefect.flow_runs")
    before = flow_runs.level
    assert bench.run(logging_level="WARNING").status == "Completed"
    assert flow_runs.level == before
