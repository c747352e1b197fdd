"""The kinds of compute target, each a thin `ComputeTarget` that differs only in where its
cluster comes from: a running scheduler, a cluster class the job starts, or processes on this
machine."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from distributed import Client
from distributed.security import Security

from prefect_parallelrun.execute.cluster_class import import_cluster_class, takes_argument
from prefect_parallelrun.execute.cluster_workers import wait_for_cluster_workers
from prefect_parallelrun.execute.compute_target import ComputeTarget, ComputeTargetError
from prefect_parallelrun.execute.compute_tls import (
    client_security,
    cluster_security,
    connection_failure,
    plain_tcp_warning,
)
from prefect_parallelrun.execute.local_cluster import local_cluster
from prefect_parallelrun.settings import get_settings

LOCAL_CLUSTER_CLASS = "distributed.LocalCluster"


class SchedulerCompute(ComputeTarget):
    """A running Dask scheduler; the job uses it and leaves it running.

    Args:
        address: The scheduler's address, such as tcp://host:8786 or tls://host:8786.
        node_count: How many Dask workers the job wants.
        process_count_per_node: Entry-script processes per worker; None for the default.
        tls_settings: `distributed.security.Security` keyword arguments; with none, Dask's
            own configuration (`distributed.comm.tls`, a security loader) applies.

    Raises:
        ComputeTargetError: A `tls://` address with no client certificate, or TLS settings
            whose certificate or key cannot be loaded.
    """

    def __init__(
        self, address: str, node_count: int, process_count_per_node: int | None,
        tls_settings: dict[str, Any] | None = None,
    ):
        super().__init__(node_count, process_count_per_node)
        self.address = address
        self.security = client_security(tls_settings or {}, address)

    def security_warning(self) -> str | None:
        """The warning for a plain tcp:// scheduler on another machine.

        Returns:
            The warning, or None for a tls:// or loopback scheduler.
        """
        return plain_tcp_warning(self.address)

    def _connect(self, cluster: Any | None) -> Client:
        try:
            return Client(self.address, security=self.security)
        except (OSError, ssl.SSLError) as error:
            raise ComputeTargetError(connection_failure(self.address, error)) from error


class ClusterCompute(ComputeTarget):
    """A cluster class the job starts with `cluster_kwargs`, scales or adapts, and closes.

    Without `adapt_kwargs` the cluster is scaled to `node_count` workers, and the job waits
    for them all to connect.

    Args:
        cluster_class: The dotted path of the cluster class, such as
            dask_jobqueue.SLURMCluster.
        cluster_kwargs: Keyword arguments for the cluster class.
        adapt_kwargs: Keyword arguments for `cluster.adapt()`; None to scale instead.
        node_count: How many Dask workers the job wants.
        process_count_per_node: Entry-script processes per worker; None for the default.
        dask_log_level: The level below which Dask's own log lines are dropped while the job
            runs (its scheduler runs in this process).
        tls_settings: `distributed.security.Security` keyword arguments, passed to the cluster
            class as its `security`.

    Raises:
        ComputeTargetError: The class cannot be imported; or TLS settings are given and
            `cluster_kwargs` has a `security` too, the class takes no `security`, or a
            certificate or key cannot be loaded.
    """

    def __init__(
        self,
        cluster_class: str,
        cluster_kwargs: dict[str, Any],
        adapt_kwargs: dict[str, Any] | None,
        node_count: int,
        process_count_per_node: int | None,
        dask_log_level: int = logging.WARNING,
        tls_settings: dict[str, Any] | None = None,
    ):
        super().__init__(node_count, process_count_per_node)
        self.cluster_class_path = cluster_class
        self.cluster_class = import_cluster_class(cluster_class)
        self.cluster_kwargs = dict(cluster_kwargs)
        self.adapt_kwargs = adapt_kwargs
        self.dask_log_level = dask_log_level
        if tls_settings:
            self.cluster_kwargs["security"] = self._cluster_security(cluster_class, tls_settings)

    def _cluster_security(self, dotted_path: str, tls_settings: dict[str, Any]) -> Security | None:
        if "security" in self.cluster_kwargs:
            raise ComputeTargetError(
                f"DaskCompute cluster_kwargs has 'security' and the block has TLS settings "
                f"too; keep one of them for the {dotted_path} cluster."
            )
        if not takes_argument(self.cluster_class, "security"):
            raise ComputeTargetError(
                f"DaskCompute cluster_class {dotted_path} takes no 'security' argument, so the "
                "block's TLS settings cannot reach it. Configure TLS through its own "
                "cluster_kwargs and remove the TLS settings from the block."
            )
        return cluster_security(tls_settings, dotted_path)

    @contextmanager
    def open(
        self, logger: logging.Logger | logging.LoggerAdapter | None = None
    ) -> Iterator[Client]:
        """Start, scale or adapt the cluster, connect, and close the cluster on leaving.

        Args:
            logger: Where the wait for the workers is logged; None for this module's logger.

        Returns:
            A context manager yielding the job's `distributed.Client`, once all
            `node_count` workers are connected (when not adaptive; see `cluster_workers`).

        Raises:
            ClusterWorkersTimeoutError: They did not all join within the
                `cluster_workers_timeout_seconds` setting; the cluster is closed.
        """
        timeout_seconds = get_settings().cluster_workers_timeout_seconds
        # dask-jobqueue's scheduler runs in this process: its INFO lines (each worker joining
        # and leaving) would bury the job's own log.
        dask_logger = logging.getLogger("distributed")
        previous = dask_logger.level
        dask_logger.setLevel(self.dask_log_level)
        try:
            with super().open() as client:
                if self.adapt_kwargs is None:  # the job's slots need them all connected
                    wait_for_cluster_workers(
                        client, self.node_count, self.cluster_class_path, timeout_seconds,
                        logger or logging.getLogger(__name__),
                    )
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

    Args:
        node_count: How many worker processes to start.
        process_count_per_node: Threads (process slots) per worker; None for the default.
        dask_log_level: The level below which the cluster's log lines are dropped.

    Raises:
        ComputeTargetError: `node_count` is not positive.
    """

    def __init__(self, node_count: int, process_count_per_node: int | None, dask_log_level: int):
        super().__init__(node_count, process_count_per_node)
        self.dask_log_level = dask_log_level

    def _start_cluster(self) -> Any:
        return local_cluster(
            n_workers=self.node_count,
            threads_per_worker=self.threads_per_worker,
            dask_log_level=self.dask_log_level,
        )


class LocalClusterCompute(ClusterCompute):
    """A `distributed.LocalCluster` with the block's own `cluster_kwargs` (or adapted).

    Its worker processes are started through multiprocessing, so the script needs its main
    guard.

    Args:
        node_count: How many workers to start (none at first when adaptive).
        process_count_per_node: Threads (process slots) per worker; None for the default.
        cluster_kwargs: Keyword arguments for `LocalCluster`, over the defaults.
        adapt_kwargs: Keyword arguments for `cluster.adapt()`; None to scale instead.
        dask_log_level: The level below which the cluster's log lines are dropped.

    Raises:
        ComputeTargetError: `node_count` is not positive.
    """

    def __init__(
        self,
        node_count: int,
        process_count_per_node: int | None,
        cluster_kwargs: dict[str, Any],
        adapt_kwargs: dict[str, Any] | None,
        dask_log_level: int,
    ):
        super().__init__(
            LOCAL_CLUSTER_CLASS, {}, adapt_kwargs, node_count, process_count_per_node,
            dask_log_level,
        )
        defaults = {
            "n_workers": node_count if adapt_kwargs is None else 0,
            "threads_per_worker": self.threads_per_worker,
            "processes": True,
            "dashboard_address": None,
            "silence_logs": dask_log_level,
        }
        self.cluster_kwargs = defaults | cluster_kwargs

