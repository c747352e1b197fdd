"""Report stage: the logs folder, Prefect artifacts and the run's result."""

from prefect_parallelrun.report.artifacts import publish_failed_mini_batches, publish_summary
from prefect_parallelrun.report.job_logs import AttemptRow, JobLogs
from prefect_parallelrun.report.progress import ProgressReporter
from prefect_parallelrun.report.progress_listener import (
    ProgressListener,
    ProgressSnapshot,
    current_listener,
    listening,
)
from prefect_parallelrun.report.result import ParallelRunResult

__all__ = [
    "AttemptRow",
    "JobLogs",
    "ParallelRunResult",
    "ProgressListener",
    "ProgressReporter",
    "ProgressSnapshot",
    "current_listener",
    "listening",
    "publish_failed_mini_batches",
    "publish_summary",
]
