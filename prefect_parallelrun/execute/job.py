"""A job's entry-script processes on the Dask workers, from first mini-batch to drain or stop.

    start_job(client, spec)                  # every worker, now and later: a pool of slots
    run_attempts(job_id, mini_batches, attempt)  # submitted to Dask: one attempt of each
    drain_job(client, job_id)                # normal end: shutdown() in every process
    stop_job(client, job_id)                 # abort or cancel: kill every process now

The processes belong to a `JobProcessesPlugin` (`worker_plugin.py`) registered under the job's
name, so a worker that joins later gets its own pool too, and a worker that closes kills its
processes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from distributed import Worker, get_worker

from prefect_parallelrun.execute.process_spec import ProcessSpec
from prefect_parallelrun.execute.results import AttemptResult
from prefect_parallelrun.execute.worker_plugin import (
    JobProcessesPlugin,
    plugin_name,
    unregister_plugin,
)

if TYPE_CHECKING:
    from prefect_parallelrun.settings import ParallelRunSettings


class JobNotRunningError(RuntimeError):
    """A mini-batch reached a worker on which the job has no processes (never started, or ended)."""


def start_job(client: Any, spec: ProcessSpec, start_eagerly: bool = True) -> None:
    """Give every worker, and every worker that joins later, a pool of the job's processes.

    With `start_eagerly`, each worker starts its processes now (they import the script and
    run init() while the first mini-batches are on their way); otherwise at first use.
    Starting a job whose id is already running replaces (and kills) its processes. The job
    stops by itself once `client` has been gone from the scheduler for two checks in a row,
    one every `owner_check_seconds` (a setting, read here).

    Args:
        client: The job's `distributed.Client`.
        spec: What every entry-script process of the job is started with.
        start_eagerly: Start the processes now rather than at each slot's first mini-batch.

    Raises:
        ValueError: A setting's value is invalid.
    """
    owner_check_seconds = _settings().owner_check_seconds
    client.register_plugin(
        JobProcessesPlugin(spec, owner_check_seconds, start_eagerly, owner=client.id)
    )


def run_attempt(job_id: str, mini_batch: Any, attempt: int) -> AttemptResult:
    """Run one attempt of one mini-batch on this worker: `run_attempts` for one.

    Args:
        job_id: The job's id, as in its `ProcessSpec`.
        mini_batch: The mini-batch to run.
        attempt: Its attempt number, from 1.

    Returns:
        What the attempt came to.

    Raises:
        JobNotRunningError: The job has no processes on this worker.
    """
    return run_attempts(job_id, [mini_batch], attempt)[0]


def run_attempts(job_id: str, mini_batches: list[Any], attempt: int) -> list[AttemptResult]:
    """Run one attempt of each of `mini_batches` on this worker, in order, in one process:
    the function the flow submits to Dask.

    Waits for a free process slot (not counted in the timeout), then runs each mini-batch in
    its process for at most `run_invocation_timeout` seconds, and stops after the first that
    fails (the results end there).

    Args:
        job_id: The job's id, as in its `ProcessSpec`.
        mini_batches: The mini-batches to run, in order.
        attempt: Their attempt number, from 1.

    Returns:
        One result per mini-batch run, in order, up to and including the first that failed;
        every failure of the script is a result.

    Raises:
        JobNotRunningError: The job was never started on this worker, or has ended.
    """
    worker = get_worker()
    plugin = worker.plugins.get(plugin_name(job_id))
    if not isinstance(plugin, JobProcessesPlugin):
        raise JobNotRunningError(
            f"Job {job_id!r} has no entry-script processes on worker {worker.address}: it was "
            "never started with start_job(), or it has been drained or stopped."
        )
    return plugin.run_in_order(mini_batches, attempt)


def drain_job(client: Any, job_id: str, timeout: float | None = None) -> list[str]:
    """End the job normally: each process calls shutdown() and exits; then forget the job.

    Args:
        client: The job's `distributed.Client`.
        job_id: The job's id, as in its `ProcessSpec`.
        timeout: Seconds to wait for running mini-batches, init() and shutdown(); processes
            still busy then are killed. None: the `drain_timeout_seconds` setting.

    Returns:
        The shutdown() failures, one message each.

    Raises:
        ValueError: `timeout` is None and a setting's value is invalid.
    """
    if timeout is None:
        timeout = _settings().drain_timeout_seconds
    name = plugin_name(job_id)
    problems = client.run(_drain_on_worker, name, timeout)
    unregister_plugin(client, name)
    return [problem for found in problems.values() for problem in found]


def stop_job(client: Any, job_id: str) -> None:
    """Abort or cancel: kill every process of the job now, on every worker; then forget it.

    Running attempts return at once as failed ("the job was stopped"). Stopping a job that is not
    running does nothing.

    Args:
        client: The job's `distributed.Client`.
        job_id: The job's id, as in its `ProcessSpec`.
    """
    unregister_plugin(client, plugin_name(job_id))


def job_process_ids(client: Any, job_id: str) -> dict[str, list[int]]:
    """The pids of the job's running entry-script processes, by worker address.

    Args:
        client: The job's `distributed.Client`.
        job_id: The job's id, as in its `ProcessSpec`.

    Returns:
        Each worker's address, with the pids of the job's processes running there.
    """
    return client.run(_process_ids_on_worker, plugin_name(job_id))


def _settings() -> ParallelRunSettings:
    # Imported here, in the flow's process: the workers import this module for
    # `run_attempts`, and need not pay for importing Prefect.
    from prefect_parallelrun.settings import get_settings

    return get_settings()


async def _drain_on_worker(name: str, timeout: float, dask_worker: Worker) -> list[str]:
    plugin = dask_worker.plugins.get(name)
    if not isinstance(plugin, JobProcessesPlugin):
        return []
    return await asyncio.to_thread(plugin.drain, timeout)


def _process_ids_on_worker(name: str, dask_worker: Worker) -> list[int]:
    plugin = dask_worker.plugins.get(name)
    return plugin.process_ids() if isinstance(plugin, JobProcessesPlugin) else []
