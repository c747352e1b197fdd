"""What happens to each attempt's result: recorded, then committed or counted as a failure."""

from __future__ import annotations

import dataclasses
import logging

from prefect_parallelrun.commit import CommitRecord
from prefect_parallelrun.dispatch.grouping import RunTimes
from prefect_parallelrun.dispatch.job_parts import JobParts
from prefect_parallelrun.execute.results import AttemptResult
from prefect_parallelrun.plan import MiniBatch
from prefect_parallelrun.report import AttemptRow


class Settler:
    """Settles the attempts of one job's mini-batches, from many task threads.

    Every attempt is written to the attempt report (and a failed one to job_error.txt); a
    success is committed, a failure counted against the thresholds, and the last allowed
    failure fails the mini-batch with all its items. A failed attempt counts every item of its
    mini-batch, also when it could not read them (files gone or unreadable): as many as the
    plan knows, or as an earlier attempt read.

    Args:
        parts: The job's fixed parts.
        run_times: Where committed mini-batches' run() times are counted, for grouping.
    """

    def __init__(self, parts: JobParts, run_times: RunTimes) -> None:
        self._job = parts
        self._run_times = run_times
        self.last_errors: dict[int, AttemptResult] = {}
        # Items an attempt of each unfinished mini-batch read, for the tables whose row count
        # only reading tells: a later attempt that cannot read them still fails them all.
        self._items_read: dict[int, int] = {}

    def settle(
        self, result: AttemptResult, attempt: int, unfinished: dict[int, MiniBatch],
        failures: list[AttemptResult], committed: list[AttemptResult],
    ) -> None:
        """Record one member's attempt, then commit it or count its failure.

        Args:
            result: The attempt's result.
            attempt: The attempt's number, from 1.
            unfinished: The task run's unfinished members, by index: the member leaves it
                once committed or failed for good.
            failures: Where a failed attempt is added (not one stopped by an abort).
            committed: Where a committed attempt is added.

        Raises:
            OSError: Its rows or the logs could not be written (a full disk, a read-only
                folder); see `output_failed`.
        """
        if not result.succeeded:
            result = self._all_items_failed(result, unfinished[result.mini_batch_index])
        self._record(result)
        if result.succeeded:  # even once the job is stopping: it is done, keep it
            self._commit(result, attempt)
            committed.append(result)
            del unfinished[result.mini_batch_index]
        elif self._job.monitor.aborted:  # stopped by the abort or cancel, not a failure
            self._discard(result)
        else:
            self._discard(result)
            failures.append(result)
            self._count_failed_attempt(result, attempt)
            if attempt >= self._job.run_max_try:
                del unfinished[result.mini_batch_index]

    def output_failed(
        self, mini_batch: MiniBatch, result: AttemptResult, error: OSError
    ) -> None:
        """Stop the job: the mini-batch's outcome could not be written. It stays unfinished
        (not committed, not counted), so a resumed run runs it again.

        Args:
            mini_batch: The mini-batch whose outcome was not written.
            result: Its attempt's result; its staged rows are discarded where possible.
            error: What failed.
        """
        try:
            self._discard(result)
        except OSError:
            pass  # what stays in the staging folder is never committed
        output = self._job.output
        where = output.url if output is not None else str(self._job.logs.logs_dir)
        self._job.monitor.output_failed(
            f"the outcome of mini-batch {mini_batch.index} ({mini_batch.describe()}) could "
            f"not be written to {where}: {type(error).__name__}: {error}. Mini-batches "
            f"committed before are kept. Free space there (or make it writable again) and run "
            f"the step again to resume."
        )

    def fail_mini_batch(self, result: AttemptResult) -> None:
        """Fail a mini-batch for good, with all its items.

        Args:
            result: Its last attempt's result.
        """
        self._items_read.pop(result.mini_batch_index, None)
        self._job.monitor.mini_batch_failed(result.mini_batch_index, result.items)
        self._job.progress.finished(succeeded=False)

    def _all_items_failed(self, result: AttemptResult, mini_batch: MiniBatch) -> AttemptResult:
        """The failed attempt with every item of its mini-batch counted, read or not."""
        index = result.mini_batch_index
        items = max(result.items, mini_batch.item_count or 0, self._items_read.get(index, 0))
        self._items_read[index] = items
        if items == result.items:
            return result
        return dataclasses.replace(
            result, items=items, failed_items=items - result.succeeded_items
        )

    def _commit(self, result: AttemptResult, attempt: int) -> None:
        self._items_read.pop(result.mini_batch_index, None)
        if self._job.output is not None:
            record = CommitRecord(
                mini_batch_id=result.mini_batch_id, mini_batch_index=result.mini_batch_index,
                attempt=attempt, items=result.items, succeeded_items=result.succeeded_items,
                failed_items=result.failed_items,
            )
            self._job.output.commit(record, result.staged_rows)
        self._run_times.add(result.seconds)
        self._job.monitor.mini_batch_succeeded(
            result.mini_batch_index, result.succeeded_items, result.failed_items
        )
        self._job.progress.finished(succeeded=True)

    def _count_failed_attempt(self, result: AttemptResult, attempt: int) -> None:
        """A failed attempt counts at once: the job may have to abort before anything else
        runs. The last allowed attempt fails the mini-batch with all its items."""
        self.last_errors[result.mini_batch_index] = result
        if result.fatal:
            self._job.monitor.fatal(result.error or result.status)
        if attempt >= self._job.run_max_try:
            self.fail_mini_batch(result)
        else:
            self._job.monitor.attempt_failed(result.mini_batch_index)

    def _record(self, result: AttemptResult) -> None:
        self._job.logs.record_attempt(
            AttemptRow(
                mini_batch=f"{result.mini_batch_index}:{result.mini_batch_id}",
                attempt=result.attempt, node=result.node, process=result.process,
                start=result.started_at, seconds=result.seconds, items=result.items,
                succeeded=result.succeeded_items, failed=result.failed_items,
                status=result.status, error=result.error or "",
            )
        )
        for level, message in result.log_records:
            self._job.logger.log(logging.getLevelName(level), message)
        for warning in result.warnings:
            self._job.logger.warning(warning)
        if not result.succeeded:
            self._job.logs.record_error(
                result.error or f"mini-batch {result.mini_batch_index} failed ({result.status})",
                result.traceback or "",
            )

    def _discard(self, result: AttemptResult) -> None:
        if self._job.output is not None:
            self._job.output.discard(result.staged_rows)
