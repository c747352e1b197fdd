"""Progress while a job runs: job_progress_overview.txt lines and the Prefect progress artifact."""

from __future__ import annotations

import contextvars
import threading
import time
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from prefect_parallelrun.report.job_logs import JobLogs


class ProgressReporter:
    """Counts finished mini-batches and reports them every `interval` seconds from a thread."""

    def __init__(
        self, logs: JobLogs, total: int, already_done: int, interval: float = 5.0,
        with_artifact: bool = True,
    ) -> None:
        self._logs = logs
        self._total = total
        self._already_done = already_done
        self._interval = interval
        self._lock = threading.Lock()
        self._scheduled = already_done
        self._succeeded = already_done
        self._failed = 0
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._last_line = ""
        self._artifact_id: UUID | None = None
        if with_artifact:
            self._artifact_id = create_progress_artifact(
                progress=self._percent(), description="Mini-batches processed"
            )
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._report_periodically,), daemon=True,
            name="parallel-run-progress",
        )
        self._thread.start()

    def scheduled(self, count: int = 1) -> None:
        with self._lock:
            self._scheduled += count

    def finished(self, succeeded: bool) -> None:
        with self._lock:
            if succeeded:
                self._succeeded += 1
            else:
                self._failed += 1

    def close(self) -> None:
        """Stop the thread and write the final line."""
        self._stop.set()
        self._thread.join()
        self._report()

    def line(self) -> str:
        with self._lock:
            processed = self._succeeded + self._failed
            ran = processed - self._already_done
            elapsed = time.monotonic() - self._started
            remaining = self._total - processed
            eta = f"{elapsed / ran * remaining:.0f} s" if ran and remaining else "unknown"
            if not remaining:
                eta = "0 s"
            return (
                f"scheduled {self._scheduled} of {self._total}; processed {processed} of "
                f"{self._total} ({self._succeeded} succeeded, {self._failed} failed); "
                f"estimated time left {eta}"
            )

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
        if self._artifact_id is not None:
            update_progress_artifact(artifact_id=self._artifact_id, progress=self._percent())
