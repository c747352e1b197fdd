"""What the flow knows about its mini-batches while they run, and when it must abort."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect_parallelrun.dispatch.thresholds import FailureCounts, Thresholds, crossed_threshold


@dataclass
class Tally:
    """Finished mini-batches and items, this run and committed earlier."""

    succeeded_mini_batches: int = 0
    failed_mini_batches: int = 0
    succeeded_items: int = 0
    failed_items: int = 0
    succeeded_indexes: set[int] = field(default_factory=set)
    failed_indexes: set[int] = field(default_factory=set)


class JobMonitor:
    """Counts attempts as the mini-batch tasks report their results; aborts once a
    threshold is crossed or the script cannot start. Safe to call from many task threads.

    Args:
        thresholds: The job's failure thresholds.
        total_mini_batches: The mini-batches of the whole job, committed earlier included.
        on_abort: Called once, at the first abort or cancel, with its reason and whether it
            is a cancel; it stops the job's entry-script processes.
    """

    def __init__(
        self, thresholds: Thresholds, total_mini_batches: int,
        on_abort: Callable[[str, bool], None],
    ) -> None:
        self._thresholds = thresholds
        self._total = total_mini_batches
        self._on_abort = on_abort
        self._lock = threading.Lock()
        self._failing: set[int] = set()
        self._all_scheduled = False
        self.tally = Tally()
        self.abort_reason: str | None = None
        self.fatal_error: str | None = None
        self.output_error: str | None = None
        self.cancelled = False

    @property
    def aborted(self) -> bool:
        """Whether the job was aborted or cancelled."""
        return self.abort_reason is not None

    def add_committed(self, indexes: list[int], succeeded_items: int, failed_items: int) -> None:
        """Count mini-batches committed by an earlier run of the same job (resume).

        Args:
            indexes: The committed mini-batches' indexes.
            succeeded_items: Their succeeded items, summed.
            failed_items: Their failed items, summed.
        """
        with self._lock:
            self.tally.succeeded_mini_batches += len(indexes)
            self.tally.succeeded_indexes.update(indexes)
            self.tally.succeeded_items += succeeded_items
            self.tally.failed_items += failed_items
        self._check()

    def all_scheduled(self) -> None:
        """Every pending mini-batch has been handed to a task run: allowed_failed_percent
        may now be judged."""
        with self._lock:
            self._all_scheduled = True
        self._check()

    def attempt_failed(self, index: int) -> None:
        """A failed attempt that will be retried: the mini-batch is failing for now.

        Args:
            index: The mini-batch's index.
        """
        with self._lock:
            self._failing.add(index)
        self._check()

    def mini_batch_failed(self, index: int, items: int) -> None:
        """The last attempt failed: every item of the mini-batch counts as failed.

        Args:
            index: The mini-batch's index.
            items: Its items, all counted as failed.
        """
        with self._lock:
            self._failing.add(index)
            self.tally.failed_mini_batches += 1
            self.tally.failed_items += items
            self.tally.failed_indexes.add(index)
        self._check()

    def mini_batch_succeeded(self, index: int, succeeded_items: int, failed_items: int) -> None:
        """A mini-batch was committed.

        Args:
            index: The mini-batch's index.
            succeeded_items: The items its run() returned a result for.
            failed_items: Its other items.
        """
        with self._lock:
            self._failing.discard(index)
            self.tally.succeeded_mini_batches += 1
            self.tally.succeeded_indexes.add(index)
            self.tally.succeeded_items += succeeded_items
            self.tally.failed_items += failed_items
        self._check()

    def fatal(self, error: str) -> None:
        """The entry script cannot run at all (init() fails everywhere): end the job now.

        Args:
            error: What fails; the first one given is kept.
        """
        with self._lock:
            if self.fatal_error is None:
                self.fatal_error = error
        self.abort(f"the entry script cannot start: {error}")

    def output_failed(self, error: str) -> None:
        """The output folder (or the logs in it) cannot be written: a full disk, a folder made
        read-only. Every later commit would fail the same way, so end the job now.

        Args:
            error: What could not be written, where, and what to do.
        """
        with self._lock:
            if self.abort_reason is None and self.output_error is None:
                self.output_error = error
        self.abort(f"the output folder cannot be written: {error}")

    def cancel(self, reason: str) -> None:
        """The flow run was cancelled (UI, CLI, a signal): stop the job, as for an abort.

        Args:
            reason: Who or what cancelled it.
        """
        self.abort(reason, cancelled=True)

    def abort(self, reason: str, cancelled: bool = False) -> None:
        """Stop the job: call `on_abort` once; later calls are ignored.

        Args:
            reason: Why, as a sentence; the job's result repeats it.
            cancelled: Whether this is a cancel rather than an abort.
        """
        with self._lock:
            if self.abort_reason is not None:
                return
            self.abort_reason = reason
            self.cancelled = cancelled
        self._on_abort(reason, cancelled)

    def counts(self) -> FailureCounts:
        """The figures the thresholds are judged on, now.

        Returns:
            A consistent copy of the counts.
        """
        with self._lock:
            return FailureCounts(
                failed_items=self.tally.failed_items,
                failing_mini_batches=len(self._failing),
                failed_mini_batches=self.tally.failed_mini_batches,
                total_mini_batches=self._total,
                all_scheduled=self._all_scheduled,
            )

    def _check(self) -> None:
        reason = crossed_threshold(self._thresholds, self.counts())
        if reason is not None:
            self.abort(reason)
