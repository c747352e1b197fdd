"""Progress while a job runs: job_progress_overview.txt lines, the Prefect progress artifact and
the job's progress listener, if any (`progress_listener.py`)."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from prefect_parallelrun.report.job_logs import JobLogs
from prefect_parallelrun.report.progress_listener import ProgressListener, ProgressSnapshot

logger = logging.getLogger(__name__)


class ProgressReporter:
    """Counts finished mini-batches and reports them every `interval` seconds from a thread,
    and to `listener`, if given, as each one finishes.

    Reporting never fails the job: a progress line that cannot be written, an artifact the
    API does not take, or a listener that raises is warned about once and left out.

    Args:
        logs: The logs folder, for job_progress_overview.txt.
        total: The job's mini-batches, earlier runs' included.
        already_done: Mini-batches committed by an earlier run of the same job.
        interval: Seconds between two progress lines (and artifact updates).
        with_artifact: Whether to keep a Prefect progress artifact up to date.
        listener: Called with a `ProgressSnapshot` as each mini-batch finishes.
    """

    def __init__(
        self, logs: JobLogs, total: int, already_done: int, interval: float,
        with_artifact: bool = True, listener: ProgressListener | None = None,
    ) -> None:
        self._logs, self._interval, self._listener = logs, interval, listener
        # The figures of the next snapshot; `elapsed` is measured from `_started` at each one.
        self._counts = ProgressSnapshot(
            total=total, scheduled=already_done, succeeded=already_done, failed=0,
            already_done=already_done, elapsed=0.0,
        )
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_line = ""
        self._api_warned = False
        self._artifact_id = self._create_artifact() if with_artifact else None
        with self._lock:
            self._notify()
        self._thread = _thread_in_this_context(self._report_periodically, "parallel-run-progress")
        # The artifact has a thread of its own: while the API server is away its updates wait
        # (Prefect's client retries them), and the progress file must not wait with them.
        self._artifact_thread = _thread_in_this_context(
            self._update_artifact_periodically, "parallel-run-progress-artifact"
        )

    def scheduled(self, count: int = 1) -> None:
        """Count mini-batches handed to a task run.

        Args:
            count: How many.
        """
        with self._lock:
            self._counts = replace(self._counts, scheduled=self._counts.scheduled + count)

    def finished(self, succeeded: bool) -> None:
        """Count a mini-batch finished for good, and tell the listener.

        Args:
            succeeded: Whether it was committed (else it failed its last attempt).
        """
        with self._lock:
            if succeeded:
                self._counts = replace(self._counts, succeeded=self._counts.succeeded + 1)
            else:
                self._counts = replace(self._counts, failed=self._counts.failed + 1)
            self._notify()

    def close(self) -> None:
        """Stop the threads, write the final line and send the listener a last snapshot."""
        self._stop.set()
        self._thread.join()
        self._report()
        self._artifact_thread.join()
        with self._lock:
            self._notify(finished=True)

    def line(self) -> str:
        """The progress line now.

        Returns:
            The line as written to job_progress_overview.txt.
        """
        return self.snapshot().line()

    def snapshot(self, finished: bool = False) -> ProgressSnapshot:
        """Where the job stands now.

        Args:
            finished: Whether dispatch has ended.

        Returns:
            A frozen copy of the counts.
        """
        with self._lock:
            return self._snapshot(finished)

    def _snapshot(self, finished: bool) -> ProgressSnapshot:
        return replace(
            self._counts, elapsed=time.monotonic() - self._started, finished=finished
        )

    def _notify(self, finished: bool = False) -> None:
        """Call the listener (under the lock, so that it sees the counts in order). A listener
        that raises is dropped with one warning: showing progress must not fail the job."""
        if self._listener is None:
            return
        try:
            self._listener(self._snapshot(finished))
        except Exception as error:
            logger.warning(
                "The progress listener %r raised %s: %s; progress is no longer shown to it "
                "(the job goes on).", self._listener, type(error).__name__, error,
            )
            self._listener = None

    def _percent(self) -> float:
        counts = self._counts
        return 100.0 if not counts.total else round(counts.processed / counts.total * 100, 1)

    def _report_periodically(self) -> None:
        while not self._stop.wait(self._interval):
            self._report()

    def _report(self) -> None:
        line = self.line()
        if line == self._last_line:
            return
        self._last_line = line
        self._logs.record_progress(line)

    def _create_artifact(self) -> UUID | None:
        try:
            return cast(UUID, create_progress_artifact(  # sync here: returns the id
                progress=self._percent(), description="Mini-batches processed"
            ))
        except Exception as error:
            self._warn_api(error)
            return None

    def _update_artifact_periodically(self) -> None:
        """Send the latest figure every interval, and once more when the job ends; a figure
        that cannot be sent is replaced by the next one."""
        sent: float | None = None
        while self._artifact_id is not None:
            stopping = self._stop.wait(self._interval)
            percent = self._percent()
            if percent != sent:
                try:
                    update_progress_artifact(artifact_id=self._artifact_id, progress=percent)
                    sent = percent
                except Exception as error:
                    self._warn_api(error)
            if stopping:
                return

    def _warn_api(self, error: Exception) -> None:
        if not self._api_warned:
            self._api_warned = True
            logger.warning(
                "Could not update the flow run's progress artifact (%s: %s); the job goes on, "
                "and its progress is in job_progress_overview.txt.", type(error).__name__, error,
            )


def _thread_in_this_context(target: Callable[[], None], name: str) -> threading.Thread:
    """A started daemon thread that runs `target` in a copy of this context (the flow run's,
    for its API client and settings)."""
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), daemon=True, name=name)
    thread.start()
    return thread
