"""The base of every compute target: what all of them share.

A `ComputeTarget` opens a `distributed.Client` for the length of one job and closes what the
job started. Its subclasses (`compute_clusters`) differ only in how the cluster is found or
made; `compute.compute_target_for` picks one from a config's `compute_target`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from distributed import Client

from prefect_parallelrun.execute.hardware import default_process_count


class ComputeTargetError(ValueError):
    """A `compute_target` that names no usable cluster; the message says what to change."""


class ComputeTarget:
    """A Dask cluster for one job: `open()` yields a Client and closes what it started.

    Subclasses override `_start_cluster` (a cluster the job starts and closes) or `_connect`
    (a scheduler the job only connects to), and `security_warning` when a connection can be
    unsafe.

    Args:
        node_count: How many Dask workers the job wants.
        process_count_per_node: Entry-script processes per worker; None for the default
            (one per visible GPU, else one per CPU).

    Raises:
        ComputeTargetError: `node_count` is not positive.
    """

    def __init__(self, node_count: int, process_count_per_node: int | None):
        if node_count <= 0:
            raise ComputeTargetError(f"node_count must be > 0; got {node_count}.")
        self.node_count = node_count
        self.process_count_per_node = process_count_per_node

    @property
    def threads_per_worker(self) -> int:
        """Threads of each worker the job starts on this machine: one per process slot."""
        return self.process_count_per_node or default_process_count(self.node_count)

    @contextmanager
    def open(
        self, logger: logging.Logger | logging.LoggerAdapter | None = None
    ) -> Iterator[Client]:
        """Start the cluster if the job owns one, connect, and close both on leaving.

        Args:
            logger: Where a cluster the job starts says what it waits for (its workers
                joining); None for this module's logger.

        Returns:
            A context manager yielding the job's `distributed.Client`.

        Raises:
            ComputeTargetError: The scheduler cannot be reached (see the subclasses).
        """
        cluster = self._start_cluster()
        try:
            with self._connect(cluster) as client:
                yield client
        finally:
            if cluster is not None:
                cluster.close()

    def security_warning(self) -> str | None:
        """A warning for the job's log when the connection to the cluster is unsafe.

        Returns:
            The warning, or None when the connection is safe (the default).
        """
        return None

    def _start_cluster(self) -> Any | None:
        """The cluster the job starts (and closes), or None to connect to a scheduler."""
        return None

    def _connect(self, cluster: Any | None) -> Client:
        # A cluster's Client takes the cluster's own `security`.
        return Client(cluster)
