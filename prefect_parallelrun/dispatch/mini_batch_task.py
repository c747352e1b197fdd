"""The Prefect task behind the mini-batches: one task run covers one mini-batch, or several
consecutive short ones (a group); each try of the task run is one attempt of each member.

The task runs on a thread pool in the flow process and hands its mini-batches to an
entry-script process on a Dask worker, so that retries, states and threshold counting live
beside the flow while the work itself runs on the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.states import Cancelled, State

if TYPE_CHECKING:
    from prefect_parallelrun.execute.results import AttemptResult

# The flow registers its running job here so that task runs carry only a job id and the
# indexes of their mini-batches as parameters, never the job's cluster client or secrets.
RUNNING_JOBS: dict[str, MiniBatchRunner] = {}


class MiniBatchRunner:
    """What a mini-batch task needs from its job (implemented by the flow's RunningJob)."""

    def run(self, first: int, attempt: int) -> MiniBatchesOutcome:
        """One attempt of each unfinished mini-batch of the task run starting at `first`.

        Args:
            first: Which task run: the index of its first mini-batch.
            attempt: Which try of it, from 1.

        Returns:
            The mini-batches and items this try committed.

        Raises:
            MiniBatchAttemptError: Some failed this attempt.
            JobStoppedError: The job stopped before or while they ran.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class MiniBatchesOutcome:
    """What one try of a task run committed."""

    committed: int
    succeeded_items: int
    failed_items: int


class MiniBatchAttemptError(RuntimeError):
    """Mini-batches of the task run failed this attempt; Prefect retries the task run, which
    runs only them again, until run_max_try."""

    def __init__(self, failures: list[AttemptResult]) -> None:
        first = failures[0]
        message = first.error or first.status
        if len(failures) > 1:
            others = ", ".join(str(failure.mini_batch_index) for failure in failures[1:])
            message = f"{message} Mini-batches {others} failed too (see job_error.txt)."
        super().__init__(message)
        self.attempt_results = failures


class JobStoppedError(RuntimeError):
    """The job was aborted or cancelled before or while these mini-batches ran."""


def task_run_label(first: int, last: int) -> str:
    """The name of a task run.

    Args:
        first: The index of its first mini-batch.
        last: The index of its last mini-batch.

    Returns:
        `mini-batch-7`, or `mini-batches-7-12` for a task run covering several.
    """
    return f"mini-batch-{first}" if first == last else f"mini-batches-{first}-{last}"


def _task_run_name(parameters: dict[str, Any]) -> str:
    return task_run_label(parameters["first"], parameters["last"])


@task(
    name="mini-batch",
    task_run_name=_task_run_name,  # type: ignore[arg-type]  # Prefect passes the parameters
    cache_policy=NO_CACHE,
    persist_result=False,
)
def run_mini_batches(job_id: str, first: int, last: int) -> MiniBatchesOutcome | State:
    """Run one attempt of each unfinished mini-batch from `first` to `last` (the pending ones
    among them) and commit the rows of each that succeeds.

    Mini-batches stopped because the job was aborted or cancelled end Cancelled: they did not
    fail, and a later run of the step (resume) runs them.

    Args:
        job_id: The running job's id (its `RUNNING_JOBS` entry).
        first: The index of the task run's first mini-batch.
        last: The index of its last mini-batch.

    Returns:
        What this try committed, or a Cancelled state when the job stopped.

    Raises:
        MiniBatchAttemptError: Mini-batches failed this attempt; Prefect retries the task run.
    """
    context = TaskRunContext.get()
    attempt = context.task_run.run_count if context and context.task_run else 1
    try:
        return RUNNING_JOBS[job_id].run(first, max(attempt, 1))
    except JobStoppedError as stopped:
        what = f"Mini-batch {first}" if first == last else f"Mini-batches {first}-{last}"
        return Cancelled(message=f"{what} {stopped}")
