"""The Prefect task behind each mini-batch: one attempt per task-run try, retried by Prefect.

The task runs on a thread pool in the flow process and hands the mini-batch to an
entry-script process on a Dask worker, so that retries, states, hooks and threshold counting
live beside the flow while the work itself runs on the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.states import Cancelled, State

if TYPE_CHECKING:
    from prefect_parallelrun.execute.results import AttemptResult
    from prefect_parallelrun.plan import MiniBatch

# The flow registers its running job here so that task runs carry only a job id and a small
# mini-batch descriptor as parameters, never the job's cluster client or secrets.
RUNNING_JOBS: dict[str, MiniBatchRunner] = {}


class MiniBatchRunner:
    """What a mini-batch task needs from its job (implemented by the flow's RunningJob)."""

    def run(self, mini_batch: MiniBatch, attempt: int) -> MiniBatchOutcome:
        raise NotImplementedError


@dataclass(frozen=True)
class MiniBatchOutcome:
    """A committed mini-batch, as its task returns it."""

    mini_batch_index: int
    attempt: int
    items: int
    succeeded_items: int
    failed_items: int


class MiniBatchAttemptError(RuntimeError):
    """One attempt of a mini-batch failed; Prefect retries the task until run_max_try."""

    def __init__(self, attempt_result: AttemptResult, message: str | None = None) -> None:
        super().__init__(message or attempt_result.error or attempt_result.status)
        self.attempt_result = attempt_result


class JobStoppedError(RuntimeError):
    """The job was aborted or cancelled before or while this mini-batch ran."""


@task(
    name="mini-batch",
    task_run_name="mini-batch-{mini_batch.index}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def run_mini_batch(job_id: str, mini_batch: MiniBatch) -> MiniBatchOutcome | State:
    """Run one attempt of `mini_batch` and commit its rows when it succeeds.

    A mini-batch stopped because the job was aborted or cancelled ends Cancelled: it did not
    fail, and a later run of the step (resume) runs it.
    """
    context = TaskRunContext.get()
    attempt = context.task_run.run_count if context and context.task_run else 1
    try:
        return RUNNING_JOBS[job_id].run(mini_batch, max(attempt, 1))
    except JobStoppedError as stopped:
        return Cancelled(message=f"Mini-batch {mini_batch.index} {stopped}")
