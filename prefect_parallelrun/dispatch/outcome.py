"""How a finished (or aborted) job becomes its result, its final file and its reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prefect_parallelrun.commit import OutputFolder
from prefect_parallelrun.dispatch.monitor import JobMonitor
from prefect_parallelrun.execute.results import AttemptResult
from prefect_parallelrun.plan import JobPlan
from prefect_parallelrun.report import (
    JobLogs,
    ParallelRunResult,
    publish_failed_mini_batches,
    publish_summary,
)
from prefect_parallelrun.report.result import Status


@dataclass
class JobOutcome:
    """What dispatch leaves behind: the counts and the last error of each failing mini-batch.

    Args:
        monitor: The job's counts and why it stopped, if it did.
        last_errors: The last failed attempt of each mini-batch that failed one, by index.
        interrupted: SIGTERM or Ctrl-C, raised again once the job's end is written.
    """

    monitor: JobMonitor
    last_errors: dict[int, AttemptResult]
    interrupted: BaseException | None = None


@dataclass(frozen=True)
class JobSummary:
    """A finished job's result and the name of the flow run's final state.

    Args:
        result: What the step returns.
        state_name: The final state's name: "Completed", or why it failed ("Failed",
            "Cancelled", "ThresholdExceeded", "EntryScriptCannotStart", "OutputNotWritable",
            "NoItemSucceeded").
    """

    result: ParallelRunResult
    state_name: str


def summarize(
    outcome: JobOutcome, plan: JobPlan, folder: OutputFolder | None, logs: JobLogs,
    seconds: float,
) -> JobSummary:
    """Assemble the output file, write failed_items.txt and job_result.txt, publish artifacts.

    A file that cannot be written (a full disk, a read-only folder) is named in the result's
    message, and fails a job that would have completed; nothing is raised for it.

    Args:
        outcome: What dispatch left behind.
        plan: The job's plan.
        folder: The output folder; None for summary_only without one.
        logs: The job's logs folder.
        seconds: How long the job took.

    Returns:
        The result and the final state's name; `outcome` is left unchanged.
    """
    tally = outcome.monitor.tally
    failed = [plan.mini_batches[index] for index in sorted(tally.failed_indexes)]
    unwritten: list[str] = []
    _write(unwritten, "failed_items.txt", lambda: logs.write_failed_items(
        line for mini_batch in failed for line in mini_batch.failed_items_lines()
    ))
    if folder is not None:
        _write(unwritten, "the append_row file", lambda: folder.assemble(
            mini_batch.id for mini_batch in plan.mini_batches
        ))
    processed_items = tally.succeeded_items + tally.failed_items
    not_run = len(plan.mini_batches) - tally.succeeded_mini_batches - tally.failed_mini_batches
    status, state_name, message = _status_and_message(outcome, plan, folder, not_run)
    if unwritten and outcome.monitor.output_error is not None:
        message = f"{message} Could not write {'; '.join(unwritten)} either."
    elif unwritten:
        if status == "Completed":
            status, state_name = "Failed", "OutputNotWritable"
        message = (
            f"{message} But could not write {'; '.join(unwritten)}. The committed "
            f"mini-batches are kept: free space (or make the folder writable) and run the "
            f"step again to write them."
        )
    result = ParallelRunResult(
        status=status,
        message=message,
        total_mini_batches=len(plan.mini_batches),
        succeeded_mini_batches=tally.succeeded_mini_batches,
        failed_mini_batches=tally.failed_mini_batches,
        total_items=processed_items + _unfinished_items(plan, outcome.monitor),
        succeeded_items=tally.succeeded_items,
        failed_items=tally.failed_items,
        output_file=folder.output_file if folder is not None else None,
        logs_dir=folder.logs_url if folder is not None and not folder.is_local()
        else str(logs.logs_dir),
        seconds=round(seconds, 3),
    )
    _write([], "job_result.txt", lambda: logs.write_result(result))
    publish_failed_mini_batches(
        [
            {
                "mini_batch": str(mini_batch.index),
                "id": mini_batch.id,
                "inputs": mini_batch.describe(),
                "attempts": str(outcome.last_errors[mini_batch.index].attempt)
                if mini_batch.index in outcome.last_errors else "",
                "last_error": (outcome.last_errors[mini_batch.index].error or "")
                if mini_batch.index in outcome.last_errors else "",
            }
            for mini_batch in failed
        ]
    )
    publish_summary(result)
    return JobSummary(result=result, state_name=state_name)


def _status_and_message(
    outcome: JobOutcome, plan: JobPlan, folder: OutputFolder | None, not_run: int
) -> tuple[Status, str, str]:
    """The job's status, its final state's name and its message."""
    monitor, tally = outcome.monitor, outcome.monitor.tally
    if monitor.fatal_error is not None:
        return "Failed", "EntryScriptCannotStart", (
            f"The job was aborted: the entry script cannot start. {monitor.fatal_error}"
        )
    if monitor.output_error is not None:
        return "Failed", "OutputNotWritable", (
            f"The job was aborted: {monitor.abort_reason} {tally.succeeded_mini_batches} "
            f"mini-batches succeeded, {tally.failed_mini_batches} failed and {not_run} were not "
            f"run."
        )
    if monitor.cancelled:
        return "Failed", "Cancelled", (
            f"The job was cancelled: {monitor.abort_reason} {tally.succeeded_mini_batches} "
            f"mini-batches succeeded, {tally.failed_mini_batches} failed and {not_run} were not "
            f"run; run the step again to resume with the unfinished ones."
        )
    if monitor.aborted:
        return "Failed", "ThresholdExceeded", (
            f"The job was aborted: {monitor.abort_reason} {tally.succeeded_mini_batches} "
            f"mini-batches succeeded, {tally.failed_mini_batches} failed and {not_run} were not "
            f"run; run the step again to resume with the unfinished ones."
        )
    if not plan.mini_batches:
        return "Completed", "Completed", "The inputs are empty: 0 mini-batches to run."
    if folder is not None and folder.output_file is not None and tally.succeeded_items == 0:
        total = len(plan.mini_batches)
        if tally.failed_items or not tally.failed_mini_batches:
            counts = f"out of {tally.failed_items} failed items in {total}"
        else:  # tables whose row counts only reading tells, and none could be read
            counts = f"none could be read in {tally.failed_mini_batches} of {total}"
        return "Failed", "NoItemSucceeded", (
            f"No item succeeded ({counts} mini-batches), so append_row has nothing to write. "
            f"See job_error.txt for the errors."
        )
    return "Completed", "Completed", (
        f"{tally.succeeded_mini_batches} of {len(plan.mini_batches)} mini-batches "
        f"succeeded ({tally.succeeded_items} items succeeded, {tally.failed_items} failed)."
    )


def _write(unwritten: list[str], what: str, write: Callable[[], None]) -> None:
    """Write one file of the job's end; on a full disk or a read-only folder, note what could
    not be written instead of losing the job's result (the commits are already safe)."""
    try:
        write()
    except OSError as error:
        unwritten.append(f"{what} ({type(error).__name__}: {error})")


def _unfinished_items(plan: JobPlan, monitor: JobMonitor) -> int:
    """Items of the mini-batches that never finished, where the plan knows their size."""
    finished = monitor.tally.succeeded_indexes | monitor.tally.failed_indexes
    return sum(
        mini_batch.item_count or 0
        for mini_batch in plan.mini_batches
        if mini_batch.index not in finished
    )
