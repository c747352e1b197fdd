"""The logs folder of a job (docs/outputs.md): result, errors, progress, per-attempt report."""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from prefect_parallelrun.report.result import ParallelRunResult

ATTEMPT_COLUMNS = (
    "mini_batch", "attempt", "node", "process", "start", "seconds",
    "items", "succeeded", "failed", "status", "error",
)


@dataclass(frozen=True)
class AttemptRow:
    """One line of processed_mini-batches.csv: one attempt of one mini-batch."""

    mini_batch: str
    attempt: int
    node: str
    process: str
    start: float
    seconds: float
    items: int
    succeeded: int
    failed: int
    status: str
    error: str

    def values(self) -> list[str]:
        """The row's cells, as written to the CSV file.

        Returns:
            The cells in `ATTEMPT_COLUMNS` order; the start as UTC ISO time, the error's
            first line only.
        """
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.start))
        return [
            self.mini_batch, str(self.attempt), self.node, self.process, started,
            f"{self.seconds:.3f}", str(self.items), str(self.succeeded), str(self.failed),
            self.status, self.error.splitlines()[0] if self.error else "",
        ]


class JobLogs:
    """Writes the files under `<output>/logs/`; safe to call from many task threads.

    Creates the folder; a resumed run keeps the attempt report and starts job_error.txt,
    job_progress_overview.txt and job_result.txt anew.

    Args:
        logs_dir: The logs folder.

    Raises:
        OSError: The folder cannot be created or written.
    """

    def __init__(self, logs_dir: str | Path) -> None:
        self.logs_dir = Path(logs_dir)
        self._report_dir = self.logs_dir / "sys" / "job_report"
        self._report_dir.mkdir(parents=True, exist_ok=True)
        (self.logs_dir / "user").mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._warnings: list[str] = []
        self._attempts_path = self._report_dir / "processed_mini-batches.csv"
        if not self._attempts_path.exists():
            with self._attempts_path.open("w", newline="", encoding="utf-8") as file:
                csv.writer(file).writerow(ATTEMPT_COLUMNS)
        self._start_new_files()

    def record_attempt(self, row: AttemptRow) -> None:
        """Append one attempt to processed_mini-batches.csv.

        Args:
            row: The attempt.
        """
        with self._lock, self._attempts_path.open("a", newline="", encoding="utf-8") as file:
            csv.writer(file).writerow(row.values())

    def record_error(self, heading: str, details: str) -> None:
        """Append one error to job_error.txt: a heading line, then the details indented.

        Args:
            heading: The error's message.
            details: Its traceback or other detail; may be empty.
        """
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        text = f"[{stamp}] {heading}\n" + "".join(
            f"    {line}\n" for line in details.rstrip().splitlines()
        )
        with self._lock, (self.logs_dir / "job_error.txt").open("a", encoding="utf-8") as file:
            file.write(text + "\n")

    def record_progress(self, line: str) -> None:
        """Append a progress line to job_progress_overview.txt; a write error is ignored.

        Args:
            line: The progress line, without its time stamp.
        """
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        path = self.logs_dir / "job_progress_overview.txt"
        # Progress lines are a convenience: a full disk must not stop the job here (its commits
        # fail too, and say so).
        with self._lock, suppress(OSError), path.open("a", encoding="utf-8") as file:
            file.write(f"[{stamp}] {line}\n")

    def write_failed_items(self, lines: Iterable[str]) -> None:
        """Write failed_items.txt.

        Args:
            lines: One line per failed item (or mini-batch input).
        """
        text = "".join(f"{line}\n" for line in lines)
        (self.logs_dir / "failed_items.txt").write_text(text, encoding="utf-8")

    def add_warning(self, warning: str) -> None:
        """A warning about the whole job, written to job_result.txt after the figures.

        Args:
            warning: The warning, one sentence or more.
        """
        self._warnings.append(warning)

    def write_result(self, result: ParallelRunResult) -> None:
        """Write job_result.txt: the result's summary lines, then the warnings.

        Args:
            result: The job's result.
        """
        lines = result.summary_lines() + [f"warning: {warning}" for warning in self._warnings]
        text = "\n".join(lines) + "\n"
        (self.logs_dir / "job_result.txt").write_text(text, encoding="utf-8")

    def _start_new_files(self) -> None:
        # A resumed run keeps the attempt history; its errors, progress and result are its own.
        for name in ("job_error.txt", "job_progress_overview.txt", "job_result.txt"):
            (self.logs_dir / name).write_text("", encoding="utf-8")
