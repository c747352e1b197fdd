"""One job while it runs: hands mini-batches to the cluster, counts them, commits them."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from distributed import Client
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import TerminationSignal
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from prefect_parallelrun.commit import CommitRecord, OutputFolder
from prefect_parallelrun.dispatch.mini_batch_task import (
    RUNNING_JOBS,
    JobStoppedError,
    MiniBatchAttemptError,
    MiniBatchOutcome,
    MiniBatchRunner,
    run_mini_batch,
)
from prefect_parallelrun.dispatch.monitor import JobMonitor
from prefect_parallelrun.execute.job import run_attempt
from prefect_parallelrun.execute.results import AttemptResult
from prefect_parallelrun.plan import MiniBatch
from prefect_parallelrun.report import AttemptRow, JobLogs, ProgressReporter

COUNTING_HOOKS = ("_count_completed_mini_batch", "_count_failed_mini_batch")


class _QuietCountingHooks(logging.Filter):
    """Drops Prefect's two INFO lines per hook call for the counting hooks: two log lines per
    mini-batch that say nothing to the user, each also a write to the API."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (
            message.startswith(("Running hook", "Hook "))
            and any(name in str(record.getMessage()) for name in COUNTING_HOOKS)
        )


_quiet_counting_hooks = _QuietCountingHooks()
logging.getLogger("prefect.task_runs").addFilter(_quiet_counting_hooks)


class RunningJob(MiniBatchRunner):
    """Dispatches the pending mini-batches of one job as Prefect tasks and keeps their tally."""

    def __init__(
        self, *, job_id: str, client: Client, output: OutputFolder | None, logs: JobLogs,
        monitor: JobMonitor, progress: ProgressReporter, run_max_try: int, slots: int,
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
        self._logger = logger
        self._mini_batches: dict[int, MiniBatch] = {}
        self.last_errors: dict[int, AttemptResult] = {}

    def dispatch(self, pending: Sequence[MiniBatch]) -> None:
        """Run every pending mini-batch, keeping the cluster's slots busy, until done or aborted."""
        task = run_mini_batch.with_options(
            retries=self._run_max_try - 1,
            retry_condition_fn=self._retry_condition,
            on_completion=[self._count_completed_mini_batch],
            on_failure=[self._count_failed_mini_batch],
        )
        # A few more tasks than slots, so a slot never waits for the next task to start.
        window = threading.BoundedSemaphore(self._slots * 2)
        RUNNING_JOBS[self.job_id] = self
        try:
            with ThreadPoolTaskRunner(max_workers=self._slots * 2) as runner:
                try:
                    futures = []
                    for mini_batch in pending:
                        window.acquire()
                        if self._monitor.aborted:
                            window.release()
                            break
                        self._mini_batches[mini_batch.index] = mini_batch
                        self._progress.scheduled()
                        future = runner.submit(
                            task, parameters={"job_id": self.job_id, "mini_batch": mini_batch}
                        )
                        future.add_done_callback(lambda _: window.release())
                        futures.append(future)
                    else:
                        self._monitor.all_scheduled()
                    for future in futures:
                        future.wait()
                except BaseException as error:
                    # SIGTERM (a runner or worker cancelling the flow run), Ctrl-C: stop the
                    # entry-script processes first, so that the running tasks end now.
                    self._monitor.cancel(_interruption(error))
                    raise
        finally:
            RUNNING_JOBS.pop(self.job_id, None)

    def run(self, mini_batch: MiniBatch, attempt: int) -> MiniBatchOutcome:
        """One attempt, in the mini-batch's task thread: run it on the cluster, then commit."""
        if self._monitor.aborted:
            raise JobStoppedError(f"not run: the job stopped ({self._monitor.abort_reason})")
        result = self._attempt_on_cluster(mini_batch, attempt)
        self._record(result)
        if self._monitor.aborted:
            self._discard(result)
            raise JobStoppedError(f"stopped: the job stopped ({self._monitor.abort_reason})")
        if not result.succeeded:
            self._discard(result)
            raise MiniBatchAttemptError(result)
        if self._output is not None:
            record = CommitRecord(
                mini_batch_id=mini_batch.id, mini_batch_index=mini_batch.index, attempt=attempt,
                items=result.items, succeeded_items=result.succeeded_items,
                failed_items=result.failed_items,
            )
            self._output.commit(record, result.staged_rows)
        return MiniBatchOutcome(
            mini_batch_index=mini_batch.index, attempt=attempt, items=result.items,
            succeeded_items=result.succeeded_items, failed_items=result.failed_items,
        )

    def _attempt_on_cluster(self, mini_batch: MiniBatch, attempt: int) -> AttemptResult:
        # The key carries a fresh suffix: Dask would otherwise hand back the stored result of
        # an earlier attempt with the same key instead of running the mini-batch again.
        key = f"mini-batch-{mini_batch.index}-attempt-{attempt}-{uuid.uuid4().hex[:8]}"
        started = time.time()
        future = self._client.submit(
            run_attempt, self.job_id, mini_batch, attempt, key=key, pure=False, retries=0
        )
        try:
            return future.result()
        except Exception as error:  # the cluster could not run it: a lost worker, a cancel
            return AttemptResult(
                mini_batch_id=mini_batch.id, mini_batch_index=mini_batch.index, attempt=attempt,
                node="unknown", process="unknown", started_at=started,
                seconds=time.time() - started, items=mini_batch.item_count or 0,
                succeeded_items=0, failed_items=mini_batch.item_count or 0,
                status="process_died",
                error=(
                    f"Mini-batch {mini_batch.index} ({mini_batch.describe()}) could not be run "
                    f"by the Dask cluster on attempt {attempt}: {type(error).__name__}: {error}. "
                    f"Check that the cluster's workers are alive and reachable."
                ),
            )
        finally:
            future.release()

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
            self.last_errors[result.mini_batch_index] = result
            self._logs.record_error(
                result.error or f"mini-batch {result.mini_batch_index} failed ({result.status})",
                result.traceback or "",
            )

    def _discard(self, result: AttemptResult) -> None:
        if self._output is not None:
            self._output.discard(result.staged_rows)

    # State hooks: they see each failed attempt (through the retry condition, called only while
    # retries remain) and each final state, and keep the monitor's counts.

    def _retry_condition(self, task: Any, task_run: TaskRun, state: State) -> bool:
        error = state.result(raise_on_failure=False)
        if isinstance(error, JobStoppedError):
            return False
        attempt = getattr(error, "attempt_result", None)
        if attempt is None:
            return not self._monitor.aborted
        if attempt.fatal:
            self._monitor.fatal(attempt.error or attempt.status)
            return False
        self._monitor.attempt_failed(attempt.mini_batch_index)
        return not self._monitor.aborted

    def _count_completed_mini_batch(self, task: Any, task_run: TaskRun, state: State) -> None:
        outcome: MiniBatchOutcome = state.result()
        self._monitor.mini_batch_succeeded(
            outcome.mini_batch_index, outcome.succeeded_items, outcome.failed_items
        )
        self._progress.finished(succeeded=True)

    def _count_failed_mini_batch(self, task: Any, task_run: TaskRun, state: State) -> None:
        error = state.result(raise_on_failure=False)
        if isinstance(error, JobStoppedError):
            return
        attempt = getattr(error, "attempt_result", None)
        if attempt is None:
            self._logger.error("A mini-batch task failed outside its attempt: %s", error)
            return
        if attempt.fatal:
            self._monitor.fatal(attempt.error or attempt.status)
        mini_batch = self._mini_batches[attempt.mini_batch_index]
        items = mini_batch.item_count if mini_batch.item_count is not None else attempt.items
        self._monitor.mini_batch_failed(attempt.mini_batch_index, items)
        self._progress.finished(succeeded=False)


def _interruption(error: BaseException) -> str:
    if isinstance(error, TerminationSignal):
        return (
            "the flow process received SIGTERM (a cancel through the deployment's runner or "
            "worker, or a shutdown of the machine)."
        )
    if isinstance(error, KeyboardInterrupt):
        return "the flow process was interrupted (Ctrl-C)."
    return f"the flow process stopped on {type(error).__name__}: {error}"
