"""Waiting for the workers of a cluster the job started, and saying so while it waits.

A batch system starts the workers' jobs when it can: `scale()` only submits them. A queue that
never schedules them (a wrong partition, an account over its limits, a node type that does not
exist) would leave the job waiting in silence; here it says what it waits for when it starts
waiting, again every `WAITING_LOG_SECONDS`, and fails after the `cluster_workers_timeout_seconds`
setting, before any mini-batch has run.
"""

from __future__ import annotations

import logging
import time

from distributed import Client
from distributed.exceptions import WorkerStartTimeoutError

from prefect_parallelrun.execute.compute_target import ComputeTargetError

# How often a job still waiting for its workers says so.
WAITING_LOG_SECONDS = 30.0
# Workers already there (a cluster that starts them in its constructor) need no waiting line.
FIRST_LOOK_SECONDS = 1.0


class ClusterWorkersTimeoutError(ComputeTargetError):
    """The workers of a cluster the job started did not all join in time; the message names
    the cluster class, how many joined, and what to check."""


def wait_for_cluster_workers(
    client: Client,
    wanted: int,
    cluster_class: str,
    timeout_seconds: float,
    logger: logging.Logger | logging.LoggerAdapter,
) -> None:
    """Wait until `wanted` workers have joined the client's cluster, logging while it waits.

    Args:
        client: The job's client to the cluster.
        wanted: How many workers the job waits for (its `node_count`).
        cluster_class: The cluster class's dotted path, as the user gave it, for the messages.
        timeout_seconds: How long to wait before giving up.
        logger: Where the waiting lines go (INFO).

    Raises:
        ClusterWorkersTimeoutError: Fewer than `wanted` workers joined in `timeout_seconds`.
    """
    started = time.monotonic()
    joined = _joined_within(client, wanted, min(FIRST_LOOK_SECONDS, timeout_seconds))
    if joined >= wanted:
        return
    logger.info(
        "Waiting for %d Dask workers of the %s cluster (%d joined so far); the job starts "
        "once all have joined, and fails if they have not within %g s.",
        wanted, cluster_class, joined, timeout_seconds,
    )
    deadline = started + timeout_seconds
    while (remaining := deadline - time.monotonic()) > 0:
        joined = _joined_within(client, wanted, min(WAITING_LOG_SECONDS, remaining))
        waited = time.monotonic() - started
        if joined >= wanted:
            logger.info(
                "All %d Dask workers of the %s cluster joined after %.0f s.",
                wanted, cluster_class, waited,
            )
            return
        if waited < timeout_seconds:
            logger.info(
                "Still waiting for Dask workers of the %s cluster: %d of %d joined after "
                "%.0f s.", cluster_class, joined, wanted, waited,
            )
    raise ClusterWorkersTimeoutError(_timeout_message(joined, wanted, cluster_class,
                                                      timeout_seconds))


def _joined_within(client: Client, wanted: int, seconds: float) -> int:
    """How many workers had joined when `wanted` did, or when `seconds` ran out."""
    try:
        client.wait_for_workers(wanted, timeout=seconds)
    except WorkerStartTimeoutError as error:
        return error.available_workers
    return wanted


def _timeout_message(joined: int, wanted: int, cluster_class: str, timeout: float) -> str:
    return (
        f"Only {joined} of the {wanted} Dask workers of the {cluster_class} cluster joined "
        f"within {timeout:g} s, so the job stopped before running any mini-batch, and closed "
        "the cluster. Check the batch system's queue (squeue, qstat: are the workers' jobs "
        "pending, and why?) and the DaskCompute block's cluster_kwargs (queue or partition, "
        "account, cores, memory, walltime, job_extra_directives); a worker job that ran but "
        "could not reach the scheduler says why in its own log file. If the queue is only "
        "slow, raise the PREFECT_PARALLELRUN_CLUSTER_WORKERS_TIMEOUT_SECONDS setting."
    )
