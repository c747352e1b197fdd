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
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed, State

from prefect_parallelrun.commit import OutputFolder
from prefect_parallelrun.config import ParallelRunConfig
from prefect_parallelrun.dispatch.api_outage import riding_out_api_outages
from prefect_parallelrun.dispatch.arguments import check_arguments
from prefect_parallelrun.dispatch.cluster_run import run_pending
from prefect_parallelrun.dispatch.fingerprint import job_fingerprint
from prefect_parallelrun.dispatch.grouping import check_mini_batches_per_task
from prefect_parallelrun.dispatch.job_plan import plan_for_flow
from prefect_parallelrun.dispatch.outcome import summarize
from prefect_parallelrun.plan import Dataset, InputError
from prefect_parallelrun.report import JobLogs, ParallelRunResult
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

    The flow behind `ParallelRunStep` and the command line, to serve, deploy or call from a
    flow; the entry script's contract is the same (see `ParallelRunStep`): `init()` once per
    process, `run(mini_batch)` per mini-batch returning one element per succeeded item, a
    failed attempt retried up to `run_max_try` attempts, the job aborted when a threshold is
    crossed.

    Each mini-batch is a task run named `mini-batch-<index>`, except that short ones may share
    one (`mini-batches-<first>-<last>`). The flow run ends Completed or Failed to match the
    job (Cancelled when cancelled); its data is a `ParallelRunResult` either way. Invalid
    arguments raise `ValueError` before anything runs; an invalid `PREFECT_PARALLELRUN_*`
    setting ends the flow run Failed ("InvalidSettings") with one error line naming it, and an
    input that cannot be planned (a path matching nothing, a file that does not match its
    `partition_format`, a corrupt table) ends it Failed ("InvalidInputs") with one error line
    naming the input, its data the `InputError`. `ParallelRunStep` and the command line plan
    before the flow run starts, and refuse such inputs before any flow run exists.

    Args:
        config: The run configuration: entry script, mini-batch size, thresholds, compute.
        inputs: The datasets to split into mini-batches, in order.
        output: The output folder (a local path or fsspec URL); optional for summary_only.
        arguments: Arguments for the entry script (`--name value`), seen in its sys.argv.
        name: The step's name, used for the flow run and the logs folder.
        resume: Resume the output folder's earlier run of the same job; False starts over.
        allow_reuse: Return the stored result of an identical, successful earlier run.
        mini_batches_per_task: Mini-batches per Prefect task run: a positive number, or
            "auto" (one each, until they prove shorter than about 2 s, the
            group_target_seconds setting; then consecutive ones share a task run, so that
            Prefect's bookkeeping does not slow the job).

    Returns:
        The flow run's final state, its data the job's `ParallelRunResult` (the
        `InputError` for an input that cannot be planned).

    Example:
        ```python
        from prefect import flow

        from prefect_parallelrun import FileDataset, ParallelRunConfig, parallel_run

        @flow
        def nightly() -> None:
            config = ParallelRunConfig.load_yaml(None, "config.yml")
            state = parallel_run(
                config=config, inputs=[FileDataset.from_files("images/")],
                output="scores/", return_state=True,
            )
            print(state.result(raise_on_failure=False).message)
        ```
    """
    started = time.monotonic()
    logger = get_run_logger()
    try:
        settings = get_settings()
    except ValueError as error:  # one line in the flow run's log, not a traceback
        logger.error("%s", error)
        return Failed(name="InvalidSettings", message=str(error))
    with ExitStack() as cleanup:
        cleanup.enter_context(_logging_level(logger, config.logging_level))
        # The API may go away for a while.
        cleanup.enter_context(riding_out_api_outages(settings.api_client_max_retries))
        arguments = check_arguments(arguments)
        mini_batches_per_task = check_mini_batches_per_task(mini_batches_per_task)
        check_output(config, output)
        try:
            plan = plan_for_flow(inputs, config)
        except InputError as error:  # one line naming the input, not a traceback
            logger.error("%s", error)
            return Failed(name="InvalidInputs", message=str(error), data=error)
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
        outcome = run_pending(
            config, plan, arguments, folder, logs, committed, mini_batches_per_task, logger,
            settings,
        )
        summary = summarize(outcome, plan, folder, logs, time.monotonic() - started)
        result = summary.result
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
    if summary.state_name == "Cancelled":
        return Cancelled(message=result.message, data=result)
    return Failed(name=summary.state_name, message=result.message, data=result)


def check_output(config: ParallelRunConfig, output: str | None) -> None:
    """Refuse a job that must write rows but has nowhere to write them.

    Args:
        config: The job's config.
        output: The output folder, or None.

    Raises:
        ValueError: `output_action` is append_row and `output` is None (summary_only may go
            without an output folder).
    """
    if output is None and config.output_action == "append_row":
        raise ValueError(
            "output_action is append_row but no output folder was given: pass output=... "
            "(command line: --output DIR), or use output_action='summary_only'."
        )


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
