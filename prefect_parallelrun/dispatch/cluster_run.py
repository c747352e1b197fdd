"""The part of a job that runs on the cluster: start the entry-script processes, dispatch the
pending mini-batches, watch for a cancel, and stop or drain the processes at the end."""

from __future__ import annotations

import logging
import uuid
from contextlib import ExitStack

from distributed import Client
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run

from prefect_parallelrun.commit import CommitRecord, OutputFolder
from prefect_parallelrun.config import DaskCompute, ParallelRunConfig
from prefect_parallelrun.dispatch.cancel_watch import CancelWatch
from prefect_parallelrun.dispatch.grouping import MiniBatchesPerTask
from prefect_parallelrun.dispatch.job_parts import JobParts
from prefect_parallelrun.dispatch.monitor import JobMonitor
from prefect_parallelrun.dispatch.outcome import JobOutcome
from prefect_parallelrun.dispatch.running_job import RunningJob
from prefect_parallelrun.dispatch.thresholds import Thresholds
from prefect_parallelrun.execute.compute import open_compute
from prefect_parallelrun.execute.environment_install import (
    environment_on_workers,
    installs_environment,
)
from prefect_parallelrun.execute.job import drain_job, start_job, stop_job
from prefect_parallelrun.execute.process_spec import ProcessSpec
from prefect_parallelrun.plan import JobPlan
from prefect_parallelrun.report import JobLogs, ProgressReporter, current_listener
from prefect_parallelrun.settings import ParallelRunSettings


def run_pending(
    config: ParallelRunConfig, plan: JobPlan, arguments: list[str],
    folder: OutputFolder | None, logs: JobLogs, committed: dict[str, CommitRecord],
    mini_batches_per_task: MiniBatchesPerTask,
    logger: logging.Logger | logging.LoggerAdapter, settings: ParallelRunSettings,
) -> JobOutcome:
    """Run the mini-batches of `plan` not in `committed` on the config's cluster.

    A failing mini-batch, a crossed threshold or a cancel does not raise: it is in the
    outcome. SIGTERM and Ctrl-C are caught, the processes stopped, and the signal handed back
    in `JobOutcome.interrupted`, to be raised once the job's end is written.

    Args:
        config: The job's config.
        plan: The job's plan.
        arguments: The entry script's arguments, checked.
        folder: The output folder; None for summary_only without one.
        logs: The job's logs folder.
        committed: What an earlier run of the same job committed, by mini-batch id.
        mini_batches_per_task: Mini-batches per task run: a number, or "auto".
        logger: The flow run's logger.
        settings: The settings read when the job started.

    Returns:
        The job's counts and the last error of each failing mini-batch.

    Raises:
        ComputeTargetError: The cluster cannot be opened.
    """
    pending = [mb for mb in plan.mini_batches if mb.id not in committed]
    if committed:
        logger.info(
            "Resuming: %d of %d mini-batches were committed by an earlier run; running the "
            "other %d.", len(committed), len(plan.mini_batches), len(pending),
        )
    thresholds = Thresholds.from_config(
        config.error_threshold, config.allowed_failed_count, config.allowed_failed_percent
    )
    progress = ProgressReporter(
        logs, len(plan.mini_batches), already_done=len(committed),
        interval=settings.progress_interval_seconds, listener=current_listener(),
    )
    job_id = f"{flow_run.get_id() or 'local'}-{uuid.uuid4().hex[:8]}"
    with ExitStack() as cleanup:
        cleanup.callback(progress.close)
        client = cleanup.enter_context(
            open_compute(
                config.compute_target, config.node_count, config.process_count_per_node,
                load_block=DaskCompute.load,
                # Dask's INFO lines (workers starting and closing) bury the job's own log.
                dask_log_level=logging.DEBUG if config.logging_level == "DEBUG"
                else logging.WARNING,
                warn=logger.warning,  # a plain tcp:// scheduler on another machine
                logger=logger,
            )
        )
        stopper = _JobStopper(client, job_id, logger)
        monitor = JobMonitor(thresholds, len(plan.mini_batches), stopper)
        monitor.add_committed(
            [record.mini_batch_index for record in committed.values()],
            sum(record.succeeded_items for record in committed.values()),
            sum(record.failed_items for record in committed.values()),
        )
        if not pending or monitor.aborted:
            return JobOutcome(monitor=monitor, last_errors={})
        install = installs_environment(config.compute_target, DaskCompute.load)
        requirements = cleanup.enter_context(
            environment_on_workers(client, config.environment, install, job_id, logger)
        )
        start_job(client, _process_spec(
            config, arguments, job_id, folder, logs, requirements, settings
        ))
        job = RunningJob(JobParts(
            job_id=job_id, client=client, output=folder, logs=logs, monitor=monitor,
            progress=progress, logger=logger, run_max_try=config.run_max_try,
            slots=_slots(client, config), mini_batches_per_task=mini_batches_per_task,
            group_target_seconds=settings.group_target_seconds,
            tail_task_runs_per_slot=settings.tail_task_runs_per_slot,
        ))
        interrupted = None
        try:
            with CancelWatch(
                str(flow_run.get_id()), monitor.cancel, logger, settings.cancel_poll_seconds
            ):
                job.dispatch(pending)
            if job.task_runs < job.scheduled_mini_batches:
                logger.info(
                    "%d mini-batches were run by %d Prefect task runs (short mini-batches "
                    "share a task run).", job.scheduled_mini_batches, job.task_runs,
                )
        except (TerminationSignal, KeyboardInterrupt) as error:
            # Dispatch has stopped the processes; write what was committed, then re-raise.
            interrupted = error
        finally:
            if not stopper.stopped:
                drain_job(client, job_id)
        return JobOutcome(monitor=monitor, last_errors=job.last_errors, interrupted=interrupted)


class _JobStopper:
    """The monitor's `on_abort`: says why the job stops, then stops its processes."""

    def __init__(
        self, client: Client, job_id: str, logger: logging.Logger | logging.LoggerAdapter
    ) -> None:
        self._client = client
        self._job_id = job_id
        self._logger = logger
        self.stopped = False

    def __call__(self, reason: str, cancelled: bool) -> None:
        if cancelled:
            self._logger.warning(
                "Cancelling the job: %s Stopping its entry-script processes.", reason
            )
        else:
            self._logger.error("Aborting the job: %s", reason)
        self.stopped = True
        stop_job(self._client, self._job_id)


def _process_spec(
    config: ParallelRunConfig, arguments: list[str], job_id: str,
    folder: OutputFolder | None, logs: JobLogs, requirements: list[str],
    settings: ParallelRunSettings,
) -> ProcessSpec:
    return ProcessSpec(
        job_id=job_id,
        entry_script=config.entry_script,
        source_directory=config.source_directory,
        arguments=arguments,
        environment_variables=config.secret_environment_variables(),
        output_dir=folder.url if folder is not None else None,
        logs_dir=str(logs.logs_dir),
        staging_dir=folder.staging_dir if folder is not None else None,
        output_action=config.output_action,
        logging_level=config.logging_level,
        run_invocation_timeout=float(config.run_invocation_timeout),
        process_count_per_node=config.process_count_per_node,
        requirements=requirements,
        init_timeout=settings.init_timeout_seconds,
        max_failed_starts=settings.max_failed_starts,
        liveness_check_seconds=settings.liveness_check_seconds,
        orphan_check_seconds=settings.orphan_check_seconds,
        max_log_records_per_run=settings.max_log_records_per_run,
        max_log_message_chars=settings.max_log_message_chars,
    )


def _slots(client: Client, config: ParallelRunConfig) -> int:
    """Entry-script processes the job can keep busy: node_count x process_count_per_node."""
    workers = client.scheduler_info()["workers"].values()
    per_node = config.process_count_per_node or max(
        (worker["nthreads"] for worker in workers), default=1
    )
    return max(1, config.node_count * per_node)
