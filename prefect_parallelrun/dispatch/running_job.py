"""One job while it runs: hands mini-batches to the cluster, counts them, commits them."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from distributed import Client
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import TerminationSignal
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from prefect_parallelrun.commit import CommitRecord, OutputFolder
from prefect_parallelrun.dispatch.grouping import MiniBatchesPerTask, RunTimes, group_size
from prefect_parallelrun.dispatch.mini_batch_task import (
    RUNNING_JOBS,
    JobStoppedError,
    MiniBatchAttemptError,
    MiniBatchesOutcome,
    MiniBatchRunner,
    run_mini_batches,
)
from prefect_parallelrun.dispatch.monitor import JobMonitor
from prefect_parallelrun.execute.job import run_attempts
from prefect_parallelrun.execute.results import AttemptResult
from prefect_parallelrun.plan import MiniBatch
from prefect_parallelrun.report import AttemptRow, JobLogs, ProgressReporter


class RunningJob(MiniBatchRunner):
    """Dispatches the pending mini-batches of one job as Prefect task runs (each covering one
    mini-batch or a group of consecutive ones) and keeps their tally.

    Everything is counted per mini-batch, whatever the grouping: each member of a group has
    its own attempts (the group's Prefect retry runs only its failed members again), its own
    commit, and its own place in the thresholds.
    """

    def __init__(
        self, *, job_id: str, client: Client, output: OutputFolder | None, logs: JobLogs,
        monitor: JobMonitor, progress: ProgressReporter, run_max_try: int, slots: int,
        mini_batches_per_task: MiniBatchesPerTask,
        logger: logging.Logger | logging.LoggerAdapter,
    ) -> None:
        self.job_id = job_id
        self._client = client
        self._output = output
        self._logs = logs
        self._monitor = monitor
        self._progress = progress
        self._run_max_try = run_max_try
        self._slots = slots
        self._mini_batches_per_task = mini_batches_per_task
        self._logger = logger
        self._run_times = RunTimes()
        # The unfinished members of each task run still going, by its first index, in order:
        # what a retry runs again. A member leaves as it is committed or fails for good, and
        # a task run's entry when it ends, so memory stays flat and nothing runs twice.
        self._groups: dict[int, dict[int, MiniBatch]] = {}
        self.last_errors: dict[int, AttemptResult] = {}
        self.task_runs = 0
        self.scheduled_mini_batches = 0

    def dispatch(self, pending: Sequence[MiniBatch]) -> None:
        """Run every pending mini-batch, keeping the cluster's slots busy, until done or aborted."""
        task = run_mini_batches.with_options(
            retries=self._run_max_try - 1, retry_condition_fn=self._retry_condition
        )
        # A few more task runs than slots, so a slot never waits for the next one to start.
        in_flight = self._slots * 2
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
                        if self._monitor.aborted:
                            window.release()
                            break
                        size = group_size(
                            self._mini_batches_per_task, self._run_times.mean, len(queue),
                            self._slots,
                        )
                        members = [queue.popleft() for _ in range(size)]
                        first, last = members[0].index, members[-1].index
                        self._groups[first] = {member.index: member for member in members}
                        self._progress.scheduled(len(members))
                        self.task_runs += 1
                        self.scheduled_mini_batches += len(members)
                        future = runner.submit(
                            task,
                            parameters={"job_id": self.job_id, "first": first, "last": last},
                        )
                        future.add_done_callback(lambda _: window.release())
                    else:
                        self._monitor.all_scheduled()
                    for _ in range(in_flight):  # every task run has ended
                        window.acquire()
                except BaseException as error:
                    # SIGTERM (a runner or worker cancelling the flow run), Ctrl-C: stop the
                    # entry-script processes first, so that the running tasks end now.
                    self._monitor.cancel(_interruption(error))
                    raise
        finally:
            RUNNING_JOBS.pop(self.job_id, None)

    def run(self, first: int, attempt: int) -> MiniBatchesOutcome:
        """One attempt of each unfinished member of a task run, in its task thread: run them
        on the cluster, commit each that succeeds, count each that fails."""
        unfinished = self._groups[first]
        failures: list[AttemptResult] = []
        committed: list[AttemptResult] = []
        todo = list(unfinished.values())
        while todo and not self._monitor.aborted:
            results = self._attempt_on_cluster(todo, attempt)
            todo = todo[len(results):]
            for result in results:
                try:
                    self._settle(result, attempt, unfinished, failures, committed)
                except OSError as error:
                    # A full disk, a folder made read-only: running the script again would not
                    # help, and every later commit would fail too, so the job stops.
                    self._output_failed(unfinished[result.mini_batch_index], result, error)
        if not unfinished:
            del self._groups[first]
        if failures:
            raise MiniBatchAttemptError(failures)
        if unfinished:  # the job stopped before these ran, or while they ran
            raise JobStoppedError(f"not run: the job stopped ({self._monitor.abort_reason})")
        return MiniBatchesOutcome(
            committed=len(committed),
            succeeded_items=sum(result.succeeded_items for result in committed),
            failed_items=sum(result.failed_items for result in committed),
        )

    def _settle(
        self, result: AttemptResult, attempt: int, unfinished: dict[int, MiniBatch],
        failures: list[AttemptResult], committed: list[AttemptResult],
    ) -> None:
        """Record one member's attempt, then commit it or count its failure."""
        self._record(result)
        if result.succeeded:  # even once the job is stopping: it is done, keep it
            self._commit(result, attempt)
            committed.append(result)
            del unfinished[result.mini_batch_index]
        elif self._monitor.aborted:  # stopped by the abort or cancel, not a failure
            self._discard(result)
        else:
            self._discard(result)
            failures.append(result)
            self._count_failed_attempt(result, attempt)
            if attempt >= self._run_max_try:
                del unfinished[result.mini_batch_index]

    def _attempt_on_cluster(self, todo: list[MiniBatch], attempt: int) -> list[AttemptResult]:
        """The results of the members run, in order: all of `todo`, or up to the first that
        failed (a cluster failure fails the first member, the rest are run again)."""
        first = todo[0]
        # The key carries a fresh suffix: Dask would otherwise hand back the stored result of
        # an earlier attempt with the same key instead of running the mini-batches again.
        key = f"mini-batch-{first.index}-attempt-{attempt}-{uuid.uuid4().hex[:8]}"
        started = time.time()
        future = self._client.submit(
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

    def _commit(self, result: AttemptResult, attempt: int) -> None:
        if self._output is not None:
            record = CommitRecord(
                mini_batch_id=result.mini_batch_id, mini_batch_index=result.mini_batch_index,
                attempt=attempt, items=result.items, succeeded_items=result.succeeded_items,
                failed_items=result.failed_items,
            )
            self._output.commit(record, result.staged_rows)
        self._run_times.add(result.seconds)
        self._monitor.mini_batch_succeeded(
            result.mini_batch_index, result.succeeded_items, result.failed_items
        )
        self._progress.finished(succeeded=True)

    def _output_failed(
        self, mini_batch: MiniBatch, result: AttemptResult, error: OSError
    ) -> None:
        """Stop the job: the mini-batch's outcome could not be written. It stays unfinished
        (not committed, not counted), so a resumed run runs it again."""
        try:
            self._discard(result)
        except OSError:
            pass  # what stays in the staging folder is never committed
        where = self._output.url if self._output is not None else str(self._logs.logs_dir)
        self._monitor.output_failed(
            f"the outcome of mini-batch {mini_batch.index} ({mini_batch.describe()}) could "
            f"not be written to {where}: {type(error).__name__}: {error}. Mini-batches "
            f"committed before are kept. Free space there (or make it writable again) and run "
            f"the step again to resume."
        )

    def _count_failed_attempt(self, result: AttemptResult, attempt: int) -> None:
        """A failed attempt counts at once: the job may have to abort before anything else
        runs. The last allowed attempt fails the mini-batch with all its items."""
        self.last_errors[result.mini_batch_index] = result
        if result.fatal:
            self._monitor.fatal(result.error or result.status)
        if attempt >= self._run_max_try:
            self._fail_mini_batch(result)
        else:
            self._monitor.attempt_failed(result.mini_batch_index)

    def _fail_mini_batch(self, result: AttemptResult) -> None:
        self._monitor.mini_batch_failed(result.mini_batch_index, result.items)
        self._progress.finished(succeeded=False)

    def _record(self, result: AttemptResult) -> None:
        self._logs.record_attempt(
            AttemptRow(
                mini_batch=f"{result.mini_batch_index}:{result.mini_batch_id}",
                attempt=result.attempt, node=result.node, process=result.process,
                start=result.started_at, seconds=result.seconds, items=result.items,
                succeeded=result.succeeded_items, failed=result.failed_items,
                status=result.status, error=result.error or "",
            )
        )
        for level, message in result.log_records:
            self._logger.log(logging.getLevelName(level), message)
        for warning in result.warnings:
            self._logger.warning(warning)
        if not result.succeeded:
            self._logs.record_error(
                result.error or f"mini-batch {result.mini_batch_index} failed ({result.status})",
                result.traceback or "",
            )

    def _discard(self, result: AttemptResult) -> None:
        if self._output is not None:
            self._output.discard(result.staged_rows)

    def _retry_condition(self, task: Any, task_run: TaskRun, state: State) -> bool:
        """Called while retries remain. No retry once the job stopped: then the members that
        failed this attempt have had their last one, and fail with all their items."""
        if not self._monitor.aborted:
            return True
        error = state.result(raise_on_failure=False)
        for result in getattr(error, "attempt_results", []):
            self._fail_mini_batch(result)
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
