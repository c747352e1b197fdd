"""`JobParts`: the fixed parts of one running job, shared by its dispatch and its settling."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from distributed import Client

from prefect_parallelrun.commit import OutputFolder
from prefect_parallelrun.dispatch.grouping import MiniBatchesPerTask
from prefect_parallelrun.dispatch.monitor import JobMonitor
from prefect_parallelrun.report import JobLogs, ProgressReporter


@dataclass(frozen=True)
class JobParts:
    """What one job runs on, writes to and reports to, and how it groups and retries.

    Args:
        job_id: The job's id on the cluster.
        client: The Dask client of the job's cluster.
        output: The output folder; None for summary_only without one.
        logs: The job's logs folder.
        monitor: The job's counts and thresholds.
        progress: The job's progress reporter.
        logger: The flow run's logger.
        run_max_try: Attempts per mini-batch, the first included.
        slots: Entry-script processes the job keeps busy.
        mini_batches_per_task: Mini-batches per task run: a number, or "auto".
        group_target_seconds: With "auto": the seconds of work one task run aims to cover.
        tail_task_runs_per_slot: With "auto": task runs kept per slot near the job's end.
    """

    job_id: str
    client: Client
    output: OutputFolder | None
    logs: JobLogs
    monitor: JobMonitor
    progress: ProgressReporter
    logger: logging.Logger | logging.LoggerAdapter
    run_max_try: int
    slots: int
    mini_batches_per_task: MiniBatchesPerTask
    group_target_seconds: float
    tail_task_runs_per_slot: int
