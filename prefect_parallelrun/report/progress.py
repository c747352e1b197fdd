"""Progress while a job runs: job_progress_overview.txt lines, the Prefect progress artifact and,
for a caller in the same process (the command line's progress bar), a progress listener."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from prefect_parallelrun.report.job_logs import JobLogs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressSnapshot:
    """Where a running job stands, counted in mini-batches.

    `already_done` mini-batches were committed by an earlier run of a resumed job; they count
    as succeeded, but not in `per_second` or `seconds_left`, which measure this run only.
    """

    total: int
    scheduled: int
    succeeded: int
    failed: int
    already_done: int
    elapsed: float
    finished: bool = False

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed

    @property
    def per_second(self) -> float | None:
        """Mini-batches processed per second by this run; None before the first one."""
        ran = self.processed - self.already_done
        return ran / self.elapsed if ran and self.elapsed > 0 else None

    @property
    def seconds_left(self) -> float | None:
        """Estimated seconds to the end at this run's pace; None before the first one."""
        remaining = self.total - self.processed
        if not remaining:
            return 0.0
        speed = self.per_second
        return remaining / speed if speed else None

    def line(self) -> str:
        """The job_progress_overview.txt line."""
        left = self.seconds_left
        eta = "unknown" if left is None else f"{left:.0f} s"
        return (
            f"scheduled {self.scheduled} of {self.total}; processed {self.processed} of "
            f"{self.total} ({self.succeeded} succeeded, {self.failed} failed); "
            f"estimated time left {eta}"
        )


ProgressListener = Callable[[ProgressSnapshot], None]
"""Called with a snapshot when a job's progress starts, at every finished mini-batch and, with
`finished=True`, when dispatch ends. It runs in the job's threads, one call at a time, and must
return quickly."""

# How a listener crosses the flow boundary: a flow's parameters must stay JSON (deployments,
# the UI's run form), and a flow called in this process runs in this context.
_LISTENER: contextvars.ContextVar[ProgressListener | None] = contextvars.ContextVar(
    "parallel_run_progress_listener", default=None
)


@contextmanager
def listening(listener: ProgressListener | None) -> Iterator[None]:
    """Make `listener` the progress listener of the jobs started in this context."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def current_listener() -> ProgressListener | None:
    """The progress listener set by `listening()` around this job, if any."""
    return _LISTENER.get()


class ProgressReporter:
    """Counts finished mini-batches and reports them every `interval` seconds from a thread,
    and to `listener`, if given, as each one finishes."""

    def __init__(
        self, logs: JobLogs, total: int, already_done: int, interval: float = 5.0,
        with_artifact: bool = True, listener: ProgressListener | None = None,
    ) -> None:
        self._logs = logs
        self._total = total
        self._already_done = already_done
        self._interval = interval
        self._listener = listener
        self._lock = threading.Lock()
        self._scheduled = already_done
        self._succeeded = already_done
        self._failed = 0
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._last_line = ""
        self._artifact_id: UUID | None = None
        self._api_warned = False
        if with_artifact:
            self._artifact_id = self._create_artifact()
        with self._lock:
            self._notify()
        self._thread = _thread_in_this_context(self._report_periodically, "parallel-run-progress")
        # The artifact has a thread of its own: while the API server is away its updates wait
        # (Prefect's client retries them), and the progress file must not wait with them.
        self._artifact_thread = _thread_in_this_context(
            self._update_artifact_periodically, "parallel-run-progress-artifact"
        )

    def scheduled(self, count: int = 1) -> None:
        with self._lock:
            self._scheduled += count

    def finished(self, succeeded: bool) -> None:
        with self._lock:
            if succeeded:
                self._succeeded += 1
            else:
                self._failed += 1
            self._notify()

    def close(self) -> None:
        """Stop the thread and write the final line."""
        self._stop.set()
        self._thread.join()
        self._report()
        self._artifact_thread.join()
        with self._lock:
            self._notify(finished=True)

    def line(self) -> str:
        return self.snapshot().line()

    def snapshot(self, finished: bool = False) -> ProgressSnapshot:
        with self._lock:
            return self._snapshot(finished)

    def _snapshot(self, finished: bool) -> ProgressSnapshot:
        return ProgressSnapshot(
            total=self._total, scheduled=self._scheduled, succeeded=self._succeeded,
            failed=self._failed, already_done=self._already_done,
            elapsed=time.monotonic() - self._started, finished=finished,
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
        processed = self._succeeded + self._failed
        return 100.0 if not self._total else round(processed / self._total * 100, 1)

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
