"""`parallel_run`: the Prefect flow behind ParallelRunStep, the CLI and deployments.

No `from __future__ import annotations` here: a deployment's runner validates the flow's
parameters from its annotations, and string annotations it cannot resolve fail every run.
"""

import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed, State

from prefect_parallelrun.commit import OutputFolder
from prefect_parallelrun.config import DaskCompute, ParallelRunConfig
from prefect_parallelrun.dispatch.api_outage import riding_out_api_outages
from prefect_parallelrun.dispatch.arguments import check_arguments
from prefect_parallelrun.dispatch.cancel_watch import CancelWatch
from prefect_parallelrun.dispatch.fingerprint import job_fingerprint
from prefect_parallelrun.dispatch.grouping import MiniBatchesPerTask, check_mini_batches_per_task
from prefect_parallelrun.dispatch.monitor import JobMonitor
from prefect_parallelrun.dispatch.outcome import JobOutcome, summarize
from prefect_parallelrun.dispatch.running_job import RunningJob
from prefect_parallelrun.dispatch.thresholds import Thresholds
from prefect_parallelrun.execute.compute import open_compute
from prefect_parallelrun.execute.environment_install import (
    environment_on_workers,
    installs_environment,
)
from prefect_parallelrun.execute.job import drain_job, start_job, stop_job
from prefect_parallelrun.execute.process_spec import ProcessSpec
from prefect_parallelrun.plan import Dataset, JobPlan, plan_job
from prefect_parallelrun.report import (
    JobLogs,
    ParallelRunResult,
    ProgressReporter,
    current_listener,
)
from prefect_parallelrun.settings import get_settings


@flow(name="parallel-run", flow_run_name="{name}", persist_result=False, log_prints=False)
def parallel_run(
    config: ParallelRunConfig,
    inputs: list[Dataset],
    output: str | None = None,
    arguments: list[str] | None = None,
    name: str = "parallel-run",
    resume: bool = True,
    allow_reuse: bool = True,
    mini_batches_per_task: int | Literal["auto"] = "auto",
) -> State:
    """Split `inputs` into mini-batches and run the config's entry script on each, on Dask.

    Each mini-batch is a task run named `mini-batch-<index>`, except that short ones may share
    one (`mini-batches-<first>-<last>`). The flow run ends Completed or Failed to match the
    job; its data is a `ParallelRunResult` either way.

    Args:
        config: The run configuration: entry script, mini-batch size, thresholds, compute.
        inputs: The datasets to split into mini-batches, in order.
        output: The output folder (a local path or fsspec URL); optional for summary_only.
        arguments: Arguments for the entry script (`--name value`), seen in its sys.argv.
        name: The step's name, used for the flow run and the logs folder.
        resume: Resume the output folder's earlier run of the same job; False starts over.
        allow_reuse: Return the stored result of an identical, successful earlier run.
        mini_batches_per_task: Mini-batches per Prefect task run: a positive number, or
            "auto" (one each, until they prove shorter than about 2 s; then consecutive
            ones share a task run, so that Prefect's bookkeeping does not slow the job).
    """
    started = time.monotonic()
    logger = get_run_logger()
    with ExitStack() as cleanup:
        cleanup.enter_context(_logging_level(logger, config.logging_level))
        cleanup.enter_context(riding_out_api_outages())  # the API may go away for a while
        arguments = check_arguments(arguments)
        mini_batches_per_task = check_mini_batches_per_task(mini_batches_per_task)
        check_output(config, output)
        plan = plan_job(inputs, config.mini_batch_size, config.partition_keys)
        fingerprint = job_fingerprint(config, plan.fingerprint, arguments)
        logger.info(
            "Planned %d mini-batches from %d input(s) (%s).",
            len(plan.mini_batches), len(inputs), plan.kind,
        )
        folder = _output_folder(config, output)
        if folder is not None:
            cleanup.callback(folder.close)
            folder.claim(flow_run.get_id())
            reused = _reusable_result(folder, fingerprint) if allow_reuse else None
            if reused is not None:
                logger.info("Reusing the earlier successful run in %s: nothing to do.", output)
                return Completed(message=reused.message, data=reused)
        logs_dir = _logs_dir(folder, name, cleanup)
        logs = JobLogs(logs_dir)
        committed = folder.prepare(fingerprint, resume) if folder is not None else {}
        if folder is not None and folder.resume_warning is not None:
            logger.warning(folder.resume_warning)
            logs.add_warning(folder.resume_warning)
        outcome = _run(
            config, plan, arguments, folder, logs, committed, mini_batches_per_task, logger
        )
        result = summarize(outcome, plan, folder, logs, time.monotonic() - started)
        if folder is not None:
            try:
                folder.save_result({"fingerprint": fingerprint, "result": result.to_dict()})
            except OSError as error:  # a full disk: the result is still returned and shown
                logger.warning("Could not save the job's result for allow_reuse: %s", error)
            folder.publish_logs(logs_dir)
    if outcome.interrupted is not None:
        raise outcome.interrupted  # Prefect records the cancel (or the crash) itself
    if result.succeeded:
        return Completed(message=result.message, data=result)
    if outcome.state_name == "Cancelled":
        return Cancelled(message=result.message, data=result)
    return Failed(name=outcome.state_name, message=result.message, data=result)


def check_output(config: ParallelRunConfig, output: str | None) -> None:
    """append_row needs an output folder; summary_only may go without one."""
    if output is None and config.output_action == "append_row":
        raise ValueError(
            "output_action is append_row but no output folder was given: pass output=... "
            "(command line: --output DIR), or use output_action='summary_only'."
        )


def _run(
    config: ParallelRunConfig, plan: JobPlan, arguments: list[str],
    folder: OutputFolder | None, logs: JobLogs, committed: dict,
    mini_batches_per_task: MiniBatchesPerTask,
    logger: logging.Logger | logging.LoggerAdapter,
) -> JobOutcome:
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
        logs, len(plan.mini_batches), already_done=len(committed), listener=current_listener()
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
            )
        )
        stopping: list[str] = []

        def on_abort(reason: str) -> None:
            if monitor.cancelled:
                logger.warning(
                    "Cancelling the job: %s Stopping its entry-script processes.", reason
                )
            else:
                logger.error("Aborting the job: %s", reason)
            stopping.append(reason)
            stop_job(client, job_id)

        monitor = JobMonitor(thresholds, len(plan.mini_batches), on_abort)
        monitor.add_committed(
            [record.mini_batch_index for record in committed.values()],
            sum(record.succeeded_items for record in committed.values()),
            sum(record.failed_items for record in committed.values()),
        )
        if pending and not monitor.aborted:
            install = installs_environment(config.compute_target, DaskCompute.load)
            requirements = cleanup.enter_context(
                environment_on_workers(client, config.environment, install, job_id, logger)
            )
            spec = _process_spec(config, arguments, job_id, folder, logs, requirements)
            start_job(client, spec)
            job = RunningJob(
                job_id=job_id, client=client, output=folder, logs=logs, monitor=monitor,
                progress=progress, run_max_try=config.run_max_try,
                slots=_slots(client, config), mini_batches_per_task=mini_batches_per_task,
                logger=logger,
            )
            interrupted = None
            try:
                with CancelWatch(str(flow_run.get_id()), monitor.cancel, logger):
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
                if not stopping:
                    drain_job(client, job_id)
            return JobOutcome(
                monitor=monitor, last_errors=job.last_errors, interrupted=interrupted
            )
        return JobOutcome(monitor=monitor, last_errors={})


def _process_spec(
    config: ParallelRunConfig, arguments: list[str], job_id: str,
    folder: OutputFolder | None, logs: JobLogs, requirements: list[str],
) -> ProcessSpec:
    settings = get_settings()
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


def _slots(client, config: ParallelRunConfig) -> int:
    """Entry-script processes the job can keep busy: node_count x process_count_per_node."""
    workers = client.scheduler_info()["workers"].values()
    per_node = config.process_count_per_node or max(
        (worker["nthreads"] for worker in workers), default=1
    )
    return max(1, config.node_count * per_node)


def _output_folder(config: ParallelRunConfig, output: str | None) -> OutputFolder | None:
    if output is None:
        return None
    name = config.resolved_append_row_file_name if config.output_action == "append_row" else None
    return OutputFolder(output, name)


def _logs_dir(folder: OutputFolder | None, name: str, cleanup: ExitStack) -> Path:
    if folder is not None and folder.is_local():
        return Path(folder.local_path) / "logs"
    if folder is not None:
        return Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="parallel-run-")))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path.cwd() / "parallel_run_logs" / f"{name}-{stamp}-{uuid.uuid4().hex[:6]}" / "logs"


def _reusable_result(folder: OutputFolder, fingerprint: dict) -> ParallelRunResult | None:
    stored = folder.load_result()
    if not stored or stored.get("fingerprint") != fingerprint:
        return None
    result = ParallelRunResult.from_dict(stored["result"])
    return result if result.succeeded else None


@contextmanager
def _logging_level(
    logger: logging.Logger | logging.LoggerAdapter, level: str
) -> Iterator[None]:
    """The job's logging_level for the run logger, restored afterwards: the logger is shared
    with every other flow run in this process, such as the user's flow around the step."""
    target = logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
    previous = target.level
    target.setLevel(level)
    try:
        yield
    finally:
        target.setLevel(previous)
