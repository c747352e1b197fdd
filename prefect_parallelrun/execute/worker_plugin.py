"""`JobProcessesPlugin`: the entry-script processes of one job on one Dask worker.

A `WorkerPlugin` registered under the job's name (`plugin_name`), so that a worker that joins
later gets its own pool of process slots too, and a worker that closes kills its processes. It
also watches that the flow that started the job is still connected, and stops the job if not.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import socket
import tempfile
import threading
from functools import partial
from typing import Any

from distributed import Worker, WorkerPlugin
from tornado.ioloop import PeriodicCallback

from prefect_parallelrun.execute.environment import missing_requirements
from prefect_parallelrun.execute.hardware import visible_gpus
from prefect_parallelrun.execute.process_pool import ProcessPool
from prefect_parallelrun.execute.process_slot import ProcessSlot
from prefect_parallelrun.execute.process_spec import ProcessSpec
from prefect_parallelrun.execute.results import AttemptRecord, AttemptResult

OWNER_CHECK_SECONDS = 5.0

logger = logging.getLogger("prefect_parallelrun.worker")


class JobProcessesPlugin(WorkerPlugin):
    """The entry-script processes of one job on one worker: a `ProcessPool` of slots.

    `process_count_per_node` slots (default: one per visible GPU, else one per worker
    thread); slot i gets GPU i (modulo the GPU count) in CUDA_VISIBLE_DEVICES unless the job's
    environment_variables set it.
    """

    def __init__(
        self, spec: ProcessSpec, start_eagerly: bool = True, owner: str | None = None,
        owner_check_seconds: float = OWNER_CHECK_SECONDS,
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
        self._owner_watch: PeriodicCallback | None = None
        self._owner_missed = 0

    def setup(self, worker: Worker) -> None:
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
            self._owner_watch = PeriodicCallback(
                partial(self._check_owner, worker), self.owner_check_seconds * 1000
            )
            self._owner_watch.start()

    async def _check_owner(self, worker: Worker) -> None:
        """Stop the job when the Dask client of the flow that started it has gone.

        A flow process killed outright (SIGKILL, out of memory) can neither drain nor stop
        its job; without this, its entry-script processes would idle on a long-lived cluster
        (holding GPU memory) until the workers restart. The scheduler logs "add-client" and
        "remove-client" events under each client's id; gone = the latest one is a removal,
        twice in a row (a client that reconnects keeps its id and is added again).
        """
        try:
            events = await worker.scheduler.events(topic=self.owner)
        except Exception:  # the scheduler is away for a moment
            return
        actions = [
            message.get("action") for _, message in events
            if isinstance(message, dict)
            and message.get("action") in ("add-client", "remove-client")
        ]
        gone = bool(actions) and actions[-1] == "remove-client"
        self._owner_missed = self._owner_missed + 1 if gone else 0
        if self._owner_missed < 2:
            return
        logger.warning(
            "The flow that started parallel-run job %s has disconnected from the scheduler "
            "(its process was killed, or lost its connection): stopping the job's "
            "entry-script processes. Run the step again to resume the job.",
            self.spec.job_id,
        )
        self._stop_owner_watch()
        if self._pool is not None:
            await asyncio.to_thread(self._pool.stop)
        try:
            await worker.scheduler.unregister_worker_plugin(name=self.name)
        except Exception:  # another worker removed it first
            pass

    def _stop_owner_watch(self) -> None:
        if self._owner_watch is not None:
            self._owner_watch.stop()
            self._owner_watch = None

    async def teardown(self, worker: Worker) -> None:
        self._stop_owner_watch()
        if self._pool is not None:
            await asyncio.to_thread(self._pool.stop)
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def run(self, mini_batch: Any, attempt: int) -> AttemptResult:
        """Run one attempt in a free slot, waiting for one if all are busy."""
        return self.run_in_order([mini_batch], attempt)[0]

    def run_in_order(self, mini_batches: list[Any], attempt: int) -> list[AttemptResult]:
        """Run `mini_batches` one after another in one free slot, stopping after the first
        that fails: the flow decides (thresholds, an abort) before the rest run."""
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
        return [] if self._pool is None else self._pool.drain(timeout)

    def process_ids(self) -> list[int]:
        if self._pool is None:
            return []
        return [slot.pid for slot in self._pool.slots if slot.pid is not None]

    def _gpu_for(self, index: int, gpus: tuple[str, ...]) -> str | None:
        if not gpus or "CUDA_VISIBLE_DEVICES" in self.spec.environment_variables:
            return None
        return gpus[index % len(gpus)]


def plugin_name(job_id: str) -> str:
    return f"prefect-parallelrun-{job_id}"


def node_name(worker: Worker) -> str:
    """The worker's name for logs and results: its name, or host and name for numbered ones."""
    name = str(worker.name)
    if name.isdigit():
        name = f"{socket.gethostname()}-{name}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class StoppedJobFailures(logging.Filter):
    """Drops the worker's "Compute Failed" ERROR for a mini-batch that reached the worker after
    its job stopped (`JobNotRunningError`): an abort or a cancel, which the job reports itself;
    on a terminal the line would read as a second, unexplained failure."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno == logging.ERROR
            and str(record.msg).startswith("Compute Failed")
            and "JobNotRunningError" in record.getMessage()
        )


def quiet_stopped_job_failures() -> None:
    """Install `StoppedJobFailures` on this worker process's Dask logger, once."""
    worker_logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, StoppedJobFailures) for f in worker_logger.filters):
        worker_logger.addFilter(StoppedJobFailures())
