"""Compute targets: where a job's Dask workers come from.

`open_compute` turns a config's `compute_target` into a `distributed.Client` for the length of
a job. One base class holds what every target shares (open a client, close what the job
started); the subclasses differ only in how the cluster is found or made:

- `"local"`: a scheduler and `node_count` worker processes on this machine, started as
  commands (never through multiprocessing's spawn), closed after.
- `"tcp://host:port"` (any scheduler URL): a running scheduler, left running.
- `"task_runner"`: the cluster of the calling flow's `DaskTaskRunner`; `ParallelRunStep.run()`
  turns it into that cluster's scheduler address (dispatch/shared_cluster.py).
- a `DaskCompute` block, or the name of a saved one: its `address`, or its `cluster_class`
  started with `cluster_kwargs`, then adapted (`adapt_kwargs`) or scaled to `node_count`; a
  block with neither is "local", or a `distributed.LocalCluster` when it has `cluster_kwargs`
  or `adapt_kwargs` (whose worker processes need the script's main guard).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from distributed import Client

from prefect_parallelrun.execute.hardware import default_process_count
from prefect_parallelrun.execute.local_cluster import local_cluster

LOCAL = "local"
TASK_RUNNER = "task_runner"
LOCAL_CLUSTER_CLASS = "distributed.LocalCluster"


class ComputeTargetError(ValueError):
    """A `compute_target` that names no usable cluster."""


class ComputeTarget:
    """A Dask cluster for one job: `open()` yields a Client and closes what it started."""

    def __init__(self, node_count: int, process_count_per_node: int | None):
        if node_count <= 0:
            raise ComputeTargetError(f"node_count must be > 0; got {node_count}.")
        self.node_count = node_count
        self.process_count_per_node = process_count_per_node

    @contextmanager
    def open(self) -> Iterator[Client]:
        cluster = self._start_cluster()
        try:
            with Client(cluster if cluster is not None else self._address()) as client:
                yield client
        finally:
            if cluster is not None:
                cluster.close()

    def _start_cluster(self) -> Any | None:
        """The cluster the job starts (and closes), or None to connect to `_address()`."""
        return None

    def _address(self) -> str:
        raise NotImplementedError


class SchedulerCompute(ComputeTarget):
    """A running Dask scheduler; the job uses it and leaves it running."""

    def __init__(self, address: str, node_count: int, process_count_per_node: int | None):
        super().__init__(node_count, process_count_per_node)
        self.address = address

    def _address(self) -> str:
        return self.address


class ClusterCompute(ComputeTarget):
    """A cluster class the job starts with `cluster_kwargs`, scales or adapts, and closes."""

    def __init__(
        self,
        cluster_class: str,
        cluster_kwargs: dict[str, Any],
        adapt_kwargs: dict[str, Any] | None,
        node_count: int,
        process_count_per_node: int | None,
        dask_log_level: int = logging.WARNING,
    ):
        super().__init__(node_count, process_count_per_node)
        self.cluster_class = _import_cluster_class(cluster_class)
        self.cluster_kwargs = dict(cluster_kwargs)
        self.adapt_kwargs = adapt_kwargs
        self.dask_log_level = dask_log_level

    @contextmanager
    def open(self) -> Iterator[Client]:
        # dask-jobqueue's scheduler runs in this process: its INFO lines (each worker joining
        # and leaving) would bury the job's own log.
        dask_logger = logging.getLogger("distributed")
        previous = dask_logger.level
        dask_logger.setLevel(self.dask_log_level)
        try:
            with super().open() as client:
                if self.adapt_kwargs is None:
                    # A batch system starts the workers' jobs when it can (scale() only submits
                    # them); the job's slots and its spread over nodes need them all connected.
                    client.wait_for_workers(self.node_count)
                yield client
        finally:
            dask_logger.setLevel(previous)

    def _start_cluster(self) -> Any:
        cluster = self.cluster_class(**self.cluster_kwargs)
        try:
            if self.adapt_kwargs is not None:
                cluster.adapt(**self.adapt_kwargs)
            else:
                cluster.scale(self.node_count)
        except BaseException:
            cluster.close()
            raise
        return cluster


class LocalCompute(ComputeTarget):
    """`node_count` worker processes on this machine, each with one thread per process slot.

    The scheduler and workers are processes of their own (see `local_cluster`), so a plain
    script with no main guard works.
    """

    def __init__(self, node_count: int, process_count_per_node: int | None, dask_log_level: int):
        super().__init__(node_count, process_count_per_node)
        self.dask_log_level = dask_log_level

    def _start_cluster(self) -> Any:
        return local_cluster(
            n_workers=self.node_count,
            threads_per_worker=self.process_count_per_node
            or default_process_count(self.node_count),
            dask_log_level=self.dask_log_level,
        )


class LocalClusterCompute(ClusterCompute):
    """A `distributed.LocalCluster` with the block's own `cluster_kwargs` (or adapted)."""

    def __init__(
        self,
        node_count: int,
        process_count_per_node: int | None,
        cluster_kwargs: dict[str, Any],
        adapt_kwargs: dict[str, Any] | None,
        dask_log_level: int,
    ):
        defaults = {
            "n_workers": node_count if adapt_kwargs is None else 0,
            "threads_per_worker": process_count_per_node or default_process_count(node_count),
            "processes": True,
            "dashboard_address": None,
            "silence_logs": dask_log_level,
        }
        super().__init__(
            LOCAL_CLUSTER_CLASS, defaults | cluster_kwargs, adapt_kwargs, node_count,
            process_count_per_node, dask_log_level,
        )


def open_compute(
    compute_target: Any,
    node_count: int,
    process_count_per_node: int | None,
    load_block: Callable[[str], Any] | None = None,
    dask_log_level: int = logging.WARNING,
) -> AbstractContextManager[Client]:
    """A context manager yielding a Client to the job's cluster; it closes what it started.

    `compute_target` is "local", a scheduler URL, a `DaskCompute` block (any object with
    `address`, `cluster_class`, `cluster_kwargs` and `adapt_kwargs`), or the name of a saved
    one, which `load_block` loads. A bad target raises `ComputeTargetError` here, before the
    `with` starts anything. A cluster the job starts logs at `dask_log_level` and above.
    """
    target = compute_target_for(
        compute_target, node_count, process_count_per_node, load_block, dask_log_level
    )
    return target.open()


def compute_target_for(
    compute_target: Any,
    node_count: int,
    process_count_per_node: int | None,
    load_block: Callable[[str], Any] | None = None,
    dask_log_level: int = logging.WARNING,
) -> ComputeTarget:
    """The `ComputeTarget` a config's `compute_target` stands for."""
    if isinstance(compute_target, str):
        if compute_target.strip().lower() == LOCAL:
            return LocalCompute(node_count, process_count_per_node, dask_log_level)
        if compute_target.strip().lower() == TASK_RUNNER:
            raise ComputeTargetError(
                f'compute_target "{TASK_RUNNER}" (the Dask cluster of the flow that calls the '
                "step) is resolved by ParallelRunStep.run() inside a flow on "
                "prefect_dask.DaskTaskRunner; here there is no such flow. Call the step from "
                "that flow, or give 'local', a scheduler address or a DaskCompute block."
            )
        if "://" in compute_target:
            return SchedulerCompute(compute_target, node_count, process_count_per_node)
        compute_target = _load_block(compute_target, load_block)
    return _from_block(compute_target, node_count, process_count_per_node, dask_log_level)


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


def _from_block(
    block: Any, node_count: int, process_count_per_node: int | None, dask_log_level: int
) -> ComputeTarget:
    try:
        address, cluster_class = block.address, block.cluster_class
        cluster_kwargs, adapt_kwargs = block.cluster_kwargs or {}, block.adapt_kwargs
    except AttributeError as exc:
        raise ComputeTargetError(
            f"compute_target must be 'local', a scheduler address or a DaskCompute block; got "
            f"a {type(block).__name__} ({exc})."
        ) from exc
    if address and cluster_class:
        raise ComputeTargetError(
            "A DaskCompute block takes either 'address' (a running scheduler) or 'cluster_class' "
            "(a cluster to start), not both."
        )
    if address:
        return SchedulerCompute(address, node_count, process_count_per_node)
    if cluster_class:
        return ClusterCompute(
            cluster_class, cluster_kwargs, adapt_kwargs, node_count, process_count_per_node,
            dask_log_level,
        )
    if cluster_kwargs or adapt_kwargs is not None:
        return LocalClusterCompute(
            node_count, process_count_per_node, cluster_kwargs, adapt_kwargs, dask_log_level
        )
    return LocalCompute(node_count, process_count_per_node, dask_log_level)


def _import_cluster_class(dotted_path: str) -> Callable[..., Any]:
    module_name, _, class_name = dotted_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ComputeTargetError(
            f"DaskCompute cluster_class {dotted_path!r} cannot be imported ({exc}). Give a dotted "
            "path such as dask_jobqueue.SLURMCluster, and install its package."
        ) from exc
