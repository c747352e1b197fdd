"""A job's entry-script processes on the Dask workers, from first mini-batch to drain or stop.

    start_job(client, spec)                  # every worker, now and later: a pool of slots
    run_attempts(job_id, mini_batches, attempt)  # submitted to Dask: one attempt of each
    drain_job(client, job_id)                # normal end: shutdown() in every process
    stop_job(client, job_id)                 # abort or cancel: kill every process now

The processes belong to a `WorkerPlugin` registered under the job's name, so a worker that
joins later gets its own pool too, and a worker that closes kills its processes.
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

from distributed import Worker, WorkerPlugin, get_worker
from tornado.ioloop import PeriodicCallback

from prefect_parallelrun.execute.environment import missing_requirements
from prefect_parallelrun.execute.hardware import visible_gpus
from prefect_parallelrun.execute.process_pool import ProcessPool
from prefect_parallelrun.execute.process_slot import STOPPED_CAUSE, ProcessSlot
from prefect_parallelrun.execute.process_spec import ProcessSpec
from prefect_parallelrun.execute.results import AttemptRecord, AttemptResult

DEFAULT_DRAIN_TIMEOUT_SECONDS = 60.0
OWNER_CHECK_SECONDS = 5.0

logger = logging.getLogger("prefect_parallelrun.worker")


class JobNotRunningError(RuntimeError):
    """A mini-batch reached a worker on which the job has no processes (never started, or ended)."""


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
            record = AttemptRecord(
                mini_batches[0], attempt, self._node, "-", "(no process was started)"
            )
            cause = f"this worker lacks packages the job requires: {', '.join(self._missing)}."
            return [record.finish("init_failed", record.declared_items, cause=cause, fatal=True)]
        slot = self._pool.acquire()
        if slot is None:
            record = AttemptRecord(
                mini_batches[0], attempt, self._node, "-", "(no process was started)"
            )
            return [record.finish("failed", record.declared_items, cause=STOPPED_CAUSE)]
        results: list[AttemptResult] = []
        try:
            for mini_batch in mini_batches:
                results.append(slot.run(mini_batch, attempt))
                if not results[-1].succeeded:
                    break
            return results
        finally:
            self._pool.release(slot)

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


def start_job(
    client: Any, spec: ProcessSpec, start_eagerly: bool = True,
    owner_check_seconds: float = OWNER_CHECK_SECONDS,
) -> None:
    """Give every worker, and every worker that joins later, a pool of the job's processes.

    With `start_eagerly`, each worker starts its processes now (they import the script and
    run init() while the first mini-batches are on their way); otherwise at first use.
    Starting a job whose id is already running replaces (and kills) its processes. The job
    stops by itself once `client` has been gone from the scheduler for two checks in a row.
    """
    client.register_plugin(
        JobProcessesPlugin(spec, start_eagerly, client.id, owner_check_seconds)
    )


def run_attempt(job_id: str, mini_batch: Any, attempt: int) -> AttemptResult:
    """Run one attempt of one mini-batch on this worker: `run_attempts` for one."""
    return run_attempts(job_id, [mini_batch], attempt)[0]


def run_attempts(job_id: str, mini_batches: list[Any], attempt: int) -> list[AttemptResult]:
    """Run one attempt of each of `mini_batches` on this worker, in order, in one process:
    the function the flow submits to Dask.

    Waits for a free process slot (not counted in the timeout), then runs each mini-batch in
    its process for at most `run_invocation_timeout` seconds, and stops after the first that
    fails (the results end there). Every failure of the script is an `AttemptResult`;
    `JobNotRunningError` means the job was never started or has ended.
    """
    worker = get_worker()
    plugin = worker.plugins.get(plugin_name(job_id))
    if not isinstance(plugin, JobProcessesPlugin):
        raise JobNotRunningError(
            f"Job {job_id!r} has no entry-script processes on worker {worker.address}: it was "
            "never started with start_job(), or it has been drained or stopped."
        )
    return plugin.run_in_order(mini_batches, attempt)


def drain_job(
    client: Any, job_id: str, timeout: float = DEFAULT_DRAIN_TIMEOUT_SECONDS
) -> list[str]:
    """End the job normally: each process calls shutdown() and exits; then forget the job.

    Waits up to `timeout` seconds (for running mini-batches, init() and shutdown()); processes
    still busy then are killed. Returns the shutdown() failures, one message each.
    """
    name = plugin_name(job_id)
    problems = client.run(_drain_on_worker, name, timeout)
    _forget(client, name)
    return [problem for found in problems.values() for problem in found]


def stop_job(client: Any, job_id: str) -> None:
    """Abort or cancel: kill every process of the job now, on every worker; then forget it.

    Running attempts return at once as failed ("the job was stopped"). Stopping a job that is not
    running does nothing.
    """
    _forget(client, plugin_name(job_id))


def job_process_ids(client: Any, job_id: str) -> dict[str, list[int]]:
    """The pids of the job's running entry-script processes, by worker address."""
    return client.run(_process_ids_on_worker, plugin_name(job_id))


async def _drain_on_worker(name: str, timeout: float, dask_worker: Worker) -> list[str]:
    plugin = dask_worker.plugins.get(name)
    if not isinstance(plugin, JobProcessesPlugin):
        return []
    return await asyncio.to_thread(plugin.drain, timeout)


def _process_ids_on_worker(name: str, dask_worker: Worker) -> list[int]:
    plugin = dask_worker.plugins.get(name)
    return plugin.process_ids() if isinstance(plugin, JobProcessesPlugin) else []


def _forget(client: Any, name: str) -> None:
    # Unregistering tears the plugin down on every worker, which kills what is left.
    try:
        client.unregister_worker_plugin(name)
    except ValueError as exc:
        if "does not exist" not in str(exc):
            raise
