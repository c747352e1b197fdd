"""One job while it runs: hands its mini-batches to the cluster as Prefect task runs.

How each attempt's result is then committed or counted is `settling.py`'s part.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import TerminationSignal
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from prefect_parallelrun.dispatch.grouping import RunTimes, group_size
from prefect_parallelrun.dispatch.job_parts import JobParts
from prefect_parallelrun.dispatch.mini_batch_task import (
    RUNNING_JOBS,
    JobStoppedError,
    MiniBatchAttemptError,
    MiniBatchesOutcome,
    MiniBatchRunner,
    run_mini_batches,
)
from prefect_parallelrun.dispatch.settling import Settler
from prefect_parallelrun.execute.job import run_attempts
from prefect_parallelrun.execute.results import AttemptResult
from prefect_parallelrun.plan import MiniBatch


class RunningJob(MiniBatchRunner):
    """Dispatches the pending mini-batches of one job as Prefect task runs (each covering one
    mini-batch or a group of consecutive ones) and keeps their tally.

    Everything is counted per mini-batch, whatever the grouping: each member of a group has
    its own attempts (the group's Prefect retry runs only its failed members again), its own
    commit, and its own place in the thresholds.

    Args:
        parts: The job's fixed parts: cluster, output, logs, monitor, progress, options.
    """

    def __init__(self, parts: JobParts) -> None:
        self.job_id = parts.job_id
        self._job = parts
        self._run_times = RunTimes()
        self._settler = Settler(parts, self._run_times)
        # The unfinished members of each task run still going, by its first index, in order:
        # what a retry runs again. A member leaves as it is committed or fails for good, and
        # a task run's entry when it ends, so memory stays flat and nothing runs twice.
        self._groups: dict[int, dict[int, MiniBatch]] = {}
        self.task_runs = 0
        self.scheduled_mini_batches = 0

    @property
    def last_errors(self) -> dict[int, AttemptResult]:
        """The last failed attempt of each mini-batch that failed one, by index."""
        return self._settler.last_errors

    def dispatch(self, pending: Sequence[MiniBatch]) -> None:
        """Run every pending mini-batch, keeping the cluster's slots busy, until done or aborted.

        Args:
            pending: The mini-batches to run, in order.

        Raises:
            BaseException: SIGTERM (`TerminationSignal`) or Ctrl-C (`KeyboardInterrupt`)
                while it runs, re-raised once the job is cancelled and its task runs ended.
        """
        task = run_mini_batches.with_options(
            retries=self._job.run_max_try - 1, retry_condition_fn=self._retry_condition
        )
        # A few more task runs than slots, so a slot never waits for the next one to start.
        in_flight = self._job.slots * 2
        window = threading.BoundedSemaphore(in_flight)
        queue = deque(pending)
        RUNNING_JOBS[self.job_id] = self
        try:
            with (
                _attempt_tracebacks_hidden(),
                ThreadPoolTaskRunner[Any](max_workers=in_flight) as runner,
            ):
                try:
                    while queue:
                        window.acquire()
                        if self._job.monitor.aborted:
                            window.release()
                            break
                        first, last = self._next_group(queue)
                        future = runner.submit(
                            task,
                            parameters={"job_id": self.job_id, "first": first, "last": last},
                        )
                        future.add_done_callback(lambda _: window.release())
                    else:
                        self._job.monitor.all_scheduled()
                    for _ in range(in_flight):  # every task run has ended
                        window.acquire()
                except BaseException as error:
                    # SIGTERM (a runner or worker cancelling the flow run), Ctrl-C: stop the
                    # entry-script processes first, so that the running tasks end now.
                    self._job.monitor.cancel(_interruption(error))
                    raise
        finally:
            RUNNING_JOBS.pop(self.job_id, None)

    def run(self, first: int, attempt: int) -> MiniBatchesOutcome:
        """One attempt of each unfinished member of a task run, in its task thread: run them
        on the cluster, commit each that succeeds, count each that fails.

        Args:
            first: The index of the task run's first mini-batch.
            attempt: The task run's try, from 1.

        Returns:
            What this try committed.

        Raises:
            MiniBatchAttemptError: Members failed this attempt (Prefect retries them).
            JobStoppedError: The job stopped before or while members ran.
        """
        unfinished = self._groups[first]
        failures: list[AttemptResult] = []
        committed: list[AttemptResult] = []
        todo = list(unfinished.values())
        while todo and not self._job.monitor.aborted:
            results = self._attempt_on_cluster(todo, attempt)
            todo = todo[len(results):]
            for result in results:
                try:
                    self._settler.settle(result, attempt, unfinished, failures, committed)
                except OSError as error:
                    # A full disk, a folder made read-only: running the script again would not
                    # help, and every later commit would fail too, so the job stops.
                    self._settler.output_failed(
                        unfinished[result.mini_batch_index], result, error
                    )
        if not unfinished:
            del self._groups[first]
        if failures:
            raise MiniBatchAttemptError(failures)
        if unfinished:  # the job stopped before these ran, or while they ran
            raise JobStoppedError(f"not run: the job stopped ({self._job.monitor.abort_reason})")
        return MiniBatchesOutcome(
            committed=len(committed),
            succeeded_items=sum(result.succeeded_items for result in committed),
            failed_items=sum(result.failed_items for result in committed),
        )

    def _next_group(self, queue: deque[MiniBatch]) -> tuple[int, int]:
        """Take the next task run's members off the queue; their first and last index."""
        size = group_size(
            self._job.mini_batches_per_task, self._run_times.mean, len(queue), self._job.slots,
            target_seconds=self._job.group_target_seconds,
            tail_task_runs_per_slot=self._job.tail_task_runs_per_slot,
        )
        members = [queue.popleft() for _ in range(size)]
        first, last = members[0].index, members[-1].index
        self._groups[first] = {member.index: member for member in members}
        self._job.progress.scheduled(len(members))
        self.task_runs += 1
        self.scheduled_mini_batches += len(members)
        return first, last

    def _attempt_on_cluster(self, todo: list[MiniBatch], attempt: int) -> list[AttemptResult]:
        """The results of the members run, in order: all of `todo`, or up to the first that
        failed (a cluster failure fails the first member, the rest are run again)."""
        first = todo[0]
        # The key carries a fresh suffix: Dask would otherwise hand back the stored result of
        # an earlier attempt with the same key instead of running the mini-batches again.
        key = f"mini-batch-{first.index}-attempt-{attempt}-{uuid.uuid4().hex[:8]}"
        started = time.time()
        future = self._job.client.submit(
            run_attempts, self.job_id, todo, attempt, key=key, pure=False, retries=0,
            priority=-first.index,
        )
        try:
            return future.result()
        except Exception as error:  # the cluster could not run it: a lost worker, a cancel
            return [
                AttemptResult(
                    mini_batch_id=first.id, mini_batch_index=first.index, attempt=attempt,
                    node="unknown", process="unknown", started_at=started,
                    seconds=time.time() - started, items=first.item_count or 0,
                    succeeded_items=0, failed_items=first.item_count or 0,
                    status="process_died",
                    error=(
                        f"Mini-batch {first.index} ({first.describe()}) could not be run by "
                        f"the Dask cluster on attempt {attempt}: {type(error).__name__}: "
                        f"{error}. Check that the cluster's workers are alive and reachable."
                    ),
                )
            ]
        finally:
            future.release()

    def _retry_condition(self, task: Any, task_run: TaskRun, state: State) -> bool:
        """Called while retries remain. No retry once the job stopped: then the members that
        failed this attempt have had their last one, and fail with all their items."""
        if not self._job.monitor.aborted:
            return True
        error = state.result(raise_on_failure=False)
        for result in getattr(error, "attempt_results", []):
            self._settler.fail_mini_batch(result)
        return False


class _HideAttemptTracebacks(logging.Filter):
    """Prefect logs a task run's last failure with its traceback. For a failed attempt that
    traceback is this package's own frames: the script's is in job_error.txt, and the error
    message already says what failed, where, and what to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], MiniBatchAttemptError):
            record.exc_info = None
            record.exc_text = None
        return True


@contextmanager
def _attempt_tracebacks_hidden() -> Iterator[None]:
    """While the job dispatches: task runs' failed attempts log one line, no traceback."""
    task_run_logger = logging.getLogger("prefect.task_runs")
    hide = _HideAttemptTracebacks()
    task_run_logger.addFilter(hide)
    try:
        yield
    finally:
        task_run_logger.removeFilter(hide)


def _interruption(error: BaseException) -> str:
    if isinstance(error, TerminationSignal):
        return (
            "the flow process received SIGTERM (a cancel through the deployment's runner or "
            "worker, or a shutdown of the machine)."
        )
    if isinstance(error, KeyboardInterrupt):
        return "the flow process was interrupted (Ctrl-C)."
    return f"the flow process stopped on {type(error).__name__}: {error}"
