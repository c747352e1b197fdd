"""Task runs that cover several short mini-batches: everything still counts per mini-batch."""

from __future__ import annotations

import re
import uuid

import pytest
from prefect.client.schemas.objects import StateType

from prefect_parallelrun.dispatch.flow import parallel_run
from prefect_parallelrun.dispatch.grouping import check_mini_batches_per_task, group_size
from tests.jobs import JobBench, settled_task_runs
from tests.test_dispatch_cancel import (
    STUCK,
    assert_processes_stopped,
    cancel_from_cli,
    committed_items,
    flow_run_named,
    start_flow_process,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("prefect_server")


def run_job(bench: JobBench, mini_batches_per_task: int | str, **config_overrides):
    """The job's result and its task runs, by name."""
    step = bench.step(bench.config(**config_overrides))
    state = parallel_run(
        config=step.parallel_run_config, inputs=step.inputs, output=step.output,
        allow_reuse=False, mini_batches_per_task=mini_batches_per_task, return_state=True,
    )
    return state.result(raise_on_failure=False), settled_task_runs(state.state_details.flow_run_id)


def covered(name: str) -> list[int]:
    """The mini-batch indexes a task run's name says it covers."""
    single = re.fullmatch(r"mini-batch-(\d+)", name)
    if single:
        return [int(single.group(1))]
    first, last = re.fullmatch(r"mini-batches-(\d+)-(\d+)", name).groups()
    return list(range(int(first), int(last) + 1))


def attempts_of(bench: JobBench, index: int) -> list[tuple[str, str]]:
    return [
        (row["attempt"], row["status"])
        for row in bench.attempt_rows() if row["mini_batch"].startswith(f"{index}:")
    ]


def test_auto_starts_with_one_per_task_run_then_groups_short_mini_batches(bench: JobBench):
    bench.items([f"row r{number}" for number in range(40)])
    result, runs = run_job(bench, "auto")
    assert result.status == "Completed", result.message
    assert bench.rows() == [f"r{number}" for number in range(40)]
    assert "mini-batch-0" in runs
    groups = [name for name in runs if name.startswith("mini-batches-")]
    assert groups, sorted(runs)
    indexes = sorted(index for name in runs for index in covered(name))
    assert indexes == list(range(40)), sorted(runs)  # each mini-batch in exactly one task run
    assert all(run.state.type == StateType.COMPLETED for run in runs.values())


def test_one_mini_batch_per_task_keeps_a_task_run_per_mini_batch(bench: JobBench):
    texts = ["ok"] * 10
    texts[4] = "fail-times 1"
    bench.items(texts)
    result, runs = run_job(bench, 1, run_max_try=2)
    assert result.status == "Completed", result.message
    assert sorted(runs) == sorted(f"mini-batch-{number}" for number in range(10))
    assert runs["mini-batch-4"].run_count == 2
    assert {runs[f"mini-batch-{n}"].run_count for n in range(10) if n != 4} == {1}


def test_a_retry_inside_a_group_runs_and_counts_only_the_failing_mini_batch(bench: JobBench):
    texts = ["ok"] * 8
    texts[2] = "fail-times 1"
    texts[5] = "fail-times 2"
    bench.items(texts)
    result, runs = run_job(bench, 4, run_max_try=3)
    assert result.status == "Completed", result.message
    assert sorted(runs) == ["mini-batches-0-3", "mini-batches-4-7"]
    assert (runs["mini-batches-0-3"].run_count, runs["mini-batches-4-7"].run_count) == (2, 3)
    calls = bench.calls()
    assert calls["item-002.txt"] == 2 and calls["item-005.txt"] == 3
    assert {calls[f"item-{n:03d}.txt"] for n in (0, 1, 3, 4, 6, 7)} == {1}
    assert attempts_of(bench, 2) == [("1", "failed"), ("2", "succeeded")]
    assert attempts_of(bench, 5) == [("1", "failed"), ("2", "failed"), ("3", "succeeded")]
    assert bench.rows() == [f"item-{n:03d}.txt ok" for n in range(8)]


def test_a_mini_batch_failing_every_attempt_fails_alone_in_its_group(bench: JobBench):
    bench.items(["ok", "raise", "ok", "ok"])
    result, runs = run_job(bench, 4, run_max_try=2)
    assert result.status == "Completed", result.message
    assert (result.succeeded_mini_batches, result.failed_mini_batches) == (3, 1)
    assert (result.succeeded_items, result.failed_items) == (3, 1)
    assert runs["mini-batches-0-3"].state.type == StateType.FAILED
    assert attempts_of(bench, 1) == [("1", "failed"), ("2", "failed")]
    assert bench.calls()["item-002.txt"] == 1
    failed_items = (bench.output / "logs" / "failed_items.txt").read_text().splitlines()
    assert failed_items == [str(bench.inputs / "item-001.txt")]


def test_a_threshold_crossed_inside_a_group_aborts_at_once_and_resume_runs_the_rest(
    bench: JobBench,
):
    texts = ["ok"] * 10
    texts[1] = "fail-times 1"  # fails in the first run only, as if fixed before the resume
    bench.items(texts)
    result, runs = run_job(
        bench, 5, error_threshold=0, run_max_try=1, process_count_per_node=1
    )
    assert result.status == "Failed"
    assert "error_threshold crossed: 1 failed items > error_threshold 0." in result.message
    assert runs["mini-batches-0-4"].state.type == StateType.FAILED
    calls = bench.calls()
    assert [calls[f"item-{n:03d}.txt"] for n in range(5)] == [1, 1, 0, 0, 0]
    committed = committed_items(bench)
    assert "item-000.txt" in committed and "item-001.txt" not in committed

    bench.calls_file.unlink()
    resumed = bench.run(error_threshold=0, run_max_try=1, process_count_per_node=1)
    assert resumed.status == "Completed", resumed.message
    rerun = bench.calls()
    assert set(rerun) == {f"item-{n:03d}.txt" for n in range(10)} - committed
    assert set(rerun.values()) == {1}
    assert bench.rows() == [f"item-{n:03d}.txt ok" for n in range(10)]


def test_cancelling_stops_a_groups_processes_and_commits_its_finished_members(
    bench: JobBench, dask_processes, monkeypatch: pytest.MonkeyPatch
):
    bench.items(["ok"] * 2 + [STUCK] * 6)
    monkeypatch.setenv("MINI_BATCHES_PER_TASK", "4")
    name = f"cancelled-group-{uuid.uuid4().hex[:8]}"
    flow_process = start_flow_process(bench, dask_processes.address, name)
    started = {"item-000.txt", "item-001.txt", "item-002.txt", "item-004.txt"}
    try:
        # Each slot runs a group: 0, 1 (done) and 2 (stuck); 4 (stuck). A group's results
        # reach the flow together, when its last member returns.
        wait_for(lambda: set(bench.calls()) == started, 120, "the stuck mini-batches")
        wait_for(lambda: len(dask_processes.entry_process_pids()) == 2, 30, "2 processes")
        assert committed_items(bench) == set()
        cancel_from_cli(name)
        assert flow_process.wait(timeout=40) == 1
    finally:
        flow_process.kill()
        flow_process.wait()
    assert_processes_stopped(dask_processes)
    runs = settled_task_runs(flow_run_named(name).id)
    assert sorted(runs) == ["mini-batches-0-3", "mini-batches-4-7"]
    assert {run.state.type for run in runs.values()} == {StateType.CANCELLED}
    assert committed_items(bench) == {"item-000.txt", "item-001.txt"}
    assert bench.rows() == ["item-000.txt ok", "item-001.txt ok"]


@pytest.mark.parametrize(
    ("per_task", "mean", "remaining", "slots", "size"),
    [
        ("auto", None, 100, 2, 1),  # nothing measured yet
        ("auto", 0.001, 20000, 2, 2000),  # about 2 s of work
        ("auto", 0.001, 1000, 2, 250),  # no fewer than two task runs per slot at the end
        ("auto", 0.5, 1000, 2, 4),
        ("auto", 1.0, 1000, 2, 2),
        ("auto", 2.0, 1000, 2, 1),  # 2 s or more: one each
        ("auto", 30.0, 1000, 2, 1),
        ("auto", 0.001, 1, 2, 1),
        (1, 0.001, 1000, 2, 1),
        (7, 0.001, 1000, 2, 7),
        (7, None, 3, 2, 3),  # never more than remain
    ],
)
def test_group_size(per_task, mean, remaining, slots, size):
    assert group_size(
        per_task, mean, remaining, slots, target_seconds=2.0, tail_task_runs_per_slot=2
    ) == size


@pytest.mark.parametrize("value", [0, -2, 1.5, "two", "", True, None])
def test_mini_batches_per_task_must_be_a_positive_number_or_auto(value):
    with pytest.raises(ValueError, match="mini_batches_per_task must be a positive whole number"):
        check_mini_batches_per_task(value)


@pytest.mark.parametrize(("value", "checked"), [(3, 3), ("3", 3), ("AUTO", "auto")])
def test_mini_batches_per_task_accepts_numbers_and_auto(value, checked):
    assert check_mini_batches_per_task(value) == checked
