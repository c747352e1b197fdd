"""`JobProcessesPlugin`: the entry-script processes of one job on one Dask worker.

A `WorkerPlugin` registered under the job's name (`plugin_name`), so that a worker that joins
later gets its own pool of process slots too, and a worker that closes kills its processes. It
also watches (`OwnerWatch`) that the flow that started the job is still connected, and stops
the job if not.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import tempfile
import threading
from typing import Any

from distributed import Worker, WorkerPlugin

from prefect_parallelrun.execute.attempt_record import AttemptRecord
from prefect_parallelrun.execute.environment import missing_requirements
from prefect_parallelrun.execute.hardware import visible_gpus
from prefect_parallelrun.execute.owner_watch import OwnerWatch
from prefect_parallelrun.execute.process_pool import ProcessPool
from prefect_parallelrun.execute.process_slot import ProcessSlot
from prefect_parallelrun.execute.process_spec import ProcessSpec
from prefect_parallelrun.execute.results import AttemptResult
from prefect_parallelrun.execute.worker_logging import quiet_stopped_job_failures


class JobProcessesPlugin(WorkerPlugin):
    """The entry-script processes of one job on one worker: a `ProcessPool` of slots.

    `process_count_per_node` slots (default: one per visible GPU, else one per worker
    thread); slot i gets GPU i (modulo the GPU count) in CUDA_VISIBLE_DEVICES unless the job's
    environment_variables set it. A worker that lacks the job's requirements starts no
    process; its mini-batches fail, naming what it lacks.

    Args:
        spec: What every entry-script process of the job is started with.
        owner_check_seconds: How often to check that `owner` is still connected.
        start_eagerly: Start the processes when the plugin is set up, rather than at each
            slot's first mini-batch.
        owner: The Dask client id of the flow that started the job; the job stops once it
            has been gone for two checks in a row. None: no check.
    """

    def __init__(
        self, spec: ProcessSpec, owner_check_seconds: float, start_eagerly: bool = True,
        owner: str | None = None,
    ):
        self.spec = spec
        self.name = plugin_name(spec.job_id)
        self.start_eagerly = start_eagerly
        self.owner = owner
        self.owner_check_seconds = owner_check_seconds
        self._pool: ProcessPool | None = None
        self._node = ""
        self._work_dir = ""
        self._missing: list[str] = []
        self._owner_watch: OwnerWatch | None = None

    def setup(self, worker: Worker) -> None:
        """Make the worker's slots, start their processes (when eager) and the owner check.

        Args:
            worker: The worker the plugin is set up on.
        """
        quiet_stopped_job_failures()
        self._node = node_name(worker)
        self._missing = missing_requirements(self.spec.requirements)
        safe_job_id = re.sub(r"[^A-Za-z0-9._-]+", "_", self.spec.job_id)
        self._work_dir = tempfile.mkdtemp(
            prefix=f"parallelrun-{safe_job_id}-", dir=worker.local_directory
        )
        threads = worker.state.nthreads
        gpus = visible_gpus()
        count = self.spec.process_count_per_node or (min(len(gpus), threads) if gpus else threads)
        slots = [
            ProcessSlot(
                self.spec,
                self._node,
                f"process{index:03d}",
                self._work_dir,
                self._gpu_for(index, gpus),
            )
            for index in range(count)
        ]
        self._pool = ProcessPool(slots)
        if self.start_eagerly and not self._missing:
            # In the background: forking dozens of processes from a large worker takes a
            # while, and the first mini-batches can be on their way meanwhile (each waits for
            # its own slot's process). A worker never runs more at once than it has threads.
            threading.Thread(
                target=self._pool.start, args=(min(count, threads),), daemon=True,
                name=f"start-{self.name}",
            ).start()
        if self.owner is not None:
            self._owner_watch = OwnerWatch(
                self.owner, self.spec.job_id, self.owner_check_seconds, self._stop_for_gone_owner
            )
            self._owner_watch.start(worker)

    async def _stop_for_gone_owner(self, worker: Worker) -> None:
        if self._pool is not None:
            await asyncio.to_thread(self._pool.stop)
        try:
            await worker.scheduler.unregister_worker_plugin(name=self.name)
        except Exception:  # another worker removed it first
            pass

    async def teardown(self, worker: Worker) -> None:
        """Stop the owner check, kill the job's processes on this worker, remove its files.

        Args:
            worker: The worker the plugin is torn down on.
        """
        if self._owner_watch is not None:
            self._owner_watch.stop()
        if self._pool is not None:
            await asyncio.to_thread(self._pool.stop)
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def run(self, mini_batch: Any, attempt: int) -> AttemptResult:
        """Run one attempt in a free slot, waiting for one if all are busy.

        Args:
            mini_batch: The mini-batch to run.
            attempt: Its attempt number, from 1.

        Returns:
            What the attempt came to.
        """
        return self.run_in_order([mini_batch], attempt)[0]

    def run_in_order(self, mini_batches: list[Any], attempt: int) -> list[AttemptResult]:
        """Run `mini_batches` one after another in one free slot, stopping after the first
        that fails: the flow decides (thresholds, an abort) before the rest run.

        Args:
            mini_batches: The mini-batches to run, in order.
            attempt: Their attempt number, from 1.

        Returns:
            One result per mini-batch run, up to and including the first that failed; a
            single failed result when the worker lacks packages or the job was stopped.
        """
        assert self._pool is not None
        if self._missing:
            record = self._without_process(mini_batches[0], attempt)
            return [AttemptResult.missing_packages(record, self._missing)]
        slot = self._pool.acquire()
        if slot is None:
            return [AttemptResult.stopped(self._without_process(mini_batches[0], attempt))]
        results: list[AttemptResult] = []
        try:
            for mini_batch in mini_batches:
                results.append(slot.run(mini_batch, attempt))
                if not results[-1].succeeded:
                    break
            return results
        finally:
            self._pool.release(slot)

    def _without_process(self, mini_batch: Any, attempt: int) -> AttemptRecord:
        """The record of an attempt that ends before it reaches a process."""
        return AttemptRecord(mini_batch, attempt, self._node, "-", "(no process was started)")

    def drain(self, timeout: float) -> list[str]:
        """Let every process run shutdown() and exit; kill those still busy after `timeout`.

        Args:
            timeout: Seconds to wait for the processes.

        Returns:
            The shutdown() failures, one message each.
        """
        return [] if self._pool is None else self._pool.drain(timeout)

    def process_ids(self) -> list[int]:
        """The pids of the job's running processes on this worker.

        Returns:
            One pid per slot whose process is running.
        """
        if self._pool is None:
            return []
        return [slot.pid for slot in self._pool.slots if slot.pid is not None]

    def _gpu_for(self, index: int, gpus: tuple[str, ...]) -> str | None:
        if not gpus or "CUDA_VISIBLE_DEVICES" in self.spec.environment_variables:
            return None
        return gpus[index % len(gpus)]


def plugin_name(job_id: str) -> str:
    """The name a job's `JobProcessesPlugin` is registered under.

    Args:
        job_id: The job's id.

    Returns:
        The plugin's name, the same on every worker.
    """
    return f"prefect-parallelrun-{job_id}"


def unregister_plugin(client: Any, name: str) -> None:
    """Unregister a worker plugin of a job, which tears it down on every worker.

    Args:
        client: The job's `distributed.Client`.
        name: The plugin's name; one that is already gone (with its workers, or unregistered
            before) is no error.
    """
    try:
        client.unregister_worker_plugin(name)
    except ValueError as exc:
        if "does not exist" not in str(exc):
            raise


def node_name(worker: Worker) -> str:
    """The worker's name for logs and results.

    Args:
        worker: A Dask worker.

    Returns:
        Its name, or host and name for numbered ones, made safe for a file name.
    """
    name = str(worker.name)
    if name.isdigit():
        name = f"{socket.gethostname()}-{name}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
