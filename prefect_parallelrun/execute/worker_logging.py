"""The worker's own log, kept to what means something to the job's user."""

from __future__ import annotations

import logging


class StoppedJobFailures(logging.Filter):
    """Drops the worker's "Compute Failed" ERROR for a mini-batch that reached the worker after
    its job stopped (`JobNotRunningError`): an abort or a cancel, which the job reports itself;
    on a terminal the line would read as a second, unexplained failure."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to keep `record`.

        Args:
            record: A log record of the worker.

        Returns:
            False for a "Compute Failed" error caused by `JobNotRunningError`, else True.
        """
        return not (
            record.levelno == logging.ERROR
            and str(record.msg).startswith("Compute Failed")
            and "JobNotRunningError" in record.getMessage()
        )


def quiet_stopped_job_failures() -> None:
    """Install `StoppedJobFailures` on this worker process's Dask logger, once."""
    worker_logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, StoppedJobFailures) for f in worker_logger.filters):
        worker_logger.addFilter(StoppedJobFailures())
