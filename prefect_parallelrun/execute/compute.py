"""Compute targets: where a job's Dask workers come from.

`open_compute` turns a config's `compute_target` into a `distributed.Client` for the length of
a job. One base class (`compute_target.ComputeTarget`) holds what every target shares (open a
client, close what the job started); its subclasses (`compute_clusters`) differ only in how
the cluster is found or made:

- `"local"`: a scheduler and `node_count` worker processes on this machine, started as
  commands (never through multiprocessing's spawn), closed after.
- `"tcp://host:port"` (any scheduler URL): a running scheduler, left running.
- `"task_runner"`: the cluster of the calling flow's `DaskTaskRunner`; `ParallelRunStep.run()`
  turns it into that cluster's scheduler address (dispatch/shared_cluster.py).
- a `DaskCompute` block, or the name of a saved one: its `address`, or its `cluster_class`
  started with `cluster_kwargs`, then adapted (`adapt_kwargs`) or scaled to `node_count`; a
  block with neither is "local", or a `distributed.LocalCluster` when it has `cluster_kwargs`
  or `adapt_kwargs` (whose worker processes need the script's main guard).

A block's TLS settings become one `distributed.security.Security` for every connection of the
job (`compute_tls`). This module resolves a `compute_target` (a value, a block or a block's
name) into one of those targets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from distributed import Client

from prefect_parallelrun.config.dask_compute import check_cluster_choice
from prefect_parallelrun.execute.compute_clusters import (
    ClusterCompute,
    LocalClusterCompute,
    LocalCompute,
    SchedulerCompute,
)
from prefect_parallelrun.execute.compute_target import ComputeTarget, ComputeTargetError

__all__ = [
    "LOCAL",
    "TASK_RUNNER",
    "ComputeRequest",
    "ComputeTargetError",
    "compute_target_for",
    "open_compute",
]

LOCAL = "local"
TASK_RUNNER = "task_runner"


@dataclass(frozen=True)
class ComputeRequest:
    """What a job asks of its compute target: which cluster, and how many workers and slots.

    Args:
        compute_target: "local", a scheduler URL, a `DaskCompute` block (any object with
            `address`, `cluster_class`, `cluster_kwargs` and `adapt_kwargs`, and optionally
            `tls_settings()`), or the name of a saved one.
        node_count: How many Dask workers the job wants.
        process_count_per_node: Entry-script processes per worker; None for the default.
        load_block: Loads a saved `DaskCompute` block by name; None where none can be looked
            up.
        dask_log_level: The level below which a cluster the job starts drops its log lines.
    """

    compute_target: Any
    node_count: int
    process_count_per_node: int | None
    load_block: Callable[[str], Any] | None = None
    dask_log_level: int = logging.WARNING


def open_compute(
    compute_target: Any,
    node_count: int,
    process_count_per_node: int | None,
    load_block: Callable[[str], Any] | None = None,
    dask_log_level: int = logging.WARNING,
    warn: Callable[[str], None] | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> AbstractContextManager[Client]:
    """A context manager yielding a Client to the job's cluster; it closes what it started.

    The target is resolved here, before the `with` starts anything; a cluster the job starts
    is closed when the `with` ends, a running scheduler is left running.

    Args:
        compute_target: "local", a scheduler URL, a `DaskCompute` block or the name of a
            saved one (see `ComputeRequest`).
        node_count: How many Dask workers the job wants.
        process_count_per_node: Entry-script processes per worker; None for the default.
        load_block: Loads a saved `DaskCompute` block by name.
        dask_log_level: A cluster the job starts logs at this level and above.
        warn: Called once, before connecting, when the connection is unsafe (a plain tcp://
            scheduler on another machine).
        logger: Where a cluster the job starts says what it waits for (its workers joining).

    Returns:
        A context manager yielding the job's `distributed.Client`.

    Raises:
        ComputeTargetError: Here, the target names no usable cluster; when the `with`
            starts, its scheduler cannot be reached.

    Example:
        ```python
        with open_compute("local", node_count=2, process_count_per_node=1) as client:
            print(client.scheduler_info()["workers"].keys())
        ```
    """
    target = compute_target_for(ComputeRequest(
        compute_target, node_count, process_count_per_node, load_block, dask_log_level
    ))
    if warn is not None and (message := target.security_warning()) is not None:
        warn(message)
    return target.open(logger)


def compute_target_for(request: ComputeRequest) -> ComputeTarget:
    """The `ComputeTarget` a config's `compute_target` stands for; nothing is started.

    Args:
        request: The job's compute target, worker and slot counts.

    Returns:
        The target, ready to `open()`.

    Raises:
        ComputeTargetError: The target is "task_runner" (resolved by the step, not here), a
            name with no saved block, an object that is no `DaskCompute` block, or a block
            whose settings cannot be used (a cluster class that cannot be imported, TLS
            settings that cannot be loaded).
    """
    compute_target = request.compute_target
    if isinstance(compute_target, str):
        if compute_target.strip().lower() == LOCAL:
            return LocalCompute(
                request.node_count, request.process_count_per_node, request.dask_log_level
            )
        if compute_target.strip().lower() == TASK_RUNNER:
            raise ComputeTargetError(
                f'compute_target "{TASK_RUNNER}" (the Dask cluster of the flow that calls the '
                "step) is resolved by ParallelRunStep.run() inside a flow on "
                "prefect_dask.DaskTaskRunner; here there is no such flow. Call the step from "
                "that flow, or give 'local', a scheduler address or a DaskCompute block."
            )
        if "://" in compute_target:
            return SchedulerCompute(
                compute_target.strip(), request.node_count, request.process_count_per_node
            )
        compute_target = _load_block(compute_target, request.load_block)
    return _from_block(compute_target, request)


def _load_block(name: str, load_block: Callable[[str], Any] | None) -> Any:
    what = (
        f"compute_target {name!r} is not 'local', not a scheduler address such as "
        "tcp://host:8786, and"
    )
    if load_block is None:
        raise ComputeTargetError(f"{what} no saved DaskCompute block can be looked up here.")
    try:
        return load_block(name)
    except Exception as exc:
        raise ComputeTargetError(
            f"{what} no saved DaskCompute block has that name ({type(exc).__name__}: {exc}). "
            "Save one with DaskCompute(...).save(name), or fix the name."
        ) from exc


def _from_block(block: Any, request: ComputeRequest) -> ComputeTarget:
    try:
        address, cluster_class = block.address, block.cluster_class
        cluster_kwargs, adapt_kwargs = block.cluster_kwargs or {}, block.adapt_kwargs
    except AttributeError as exc:
        raise ComputeTargetError(
            f"compute_target must be 'local', a scheduler address or a DaskCompute block; got "
            f"a {type(block).__name__} ({exc})."
        ) from exc
    try:  # a stand-in object is not validated as the block is
        check_cluster_choice(address, cluster_class, cluster_kwargs, adapt_kwargs)
    except ValueError as exc:
        raise ComputeTargetError(str(exc)) from None
    # A stand-in object with the four fields only (no TLS settings) will do.
    tls_settings = block.tls_settings() if hasattr(block, "tls_settings") else {}
    nodes, processes = request.node_count, request.process_count_per_node
    if address:
        return SchedulerCompute(address, nodes, processes, tls_settings)
    if cluster_class:
        return ClusterCompute(
            cluster_class, cluster_kwargs, adapt_kwargs, nodes, processes,
            request.dask_log_level, tls_settings,
        )
    if cluster_kwargs or adapt_kwargs is not None:
        return LocalClusterCompute(
            nodes, processes, cluster_kwargs, adapt_kwargs, request.dask_log_level
        )
    return LocalCompute(nodes, processes, request.dask_log_level)
