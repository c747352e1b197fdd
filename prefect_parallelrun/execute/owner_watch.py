"""`OwnerWatch`: on a worker, stop a job whose flow has gone.

A flow process killed outright (SIGKILL, out of memory) can neither drain nor stop its job;
without this watch, its entry-script processes would idle on a long-lived cluster (holding GPU
memory) until the workers restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

from distributed import Worker
from tornado.ioloop import PeriodicCallback

logger = logging.getLogger("prefect_parallelrun.worker")


class OwnerWatch:
    """Checks, every `check_seconds`, that the Dask client of the flow that started a job is
    still connected; once it has been gone for two checks in a row, calls `on_gone` once.

    The scheduler logs "add-client" and "remove-client" events under each client's id; gone
    means the latest one is a removal (a client that reconnects keeps its id and is added
    again).

    Args:
        owner: The Dask client id of the flow that started the job.
        job_id: The job's id, for the warning logged when its flow has gone.
        check_seconds: How often to ask the scheduler.
        on_gone: Stops the job on this worker; awaited on the worker's event loop.
    """

    def __init__(
        self, owner: str, job_id: str, check_seconds: float,
        on_gone: Callable[[Worker], Awaitable[None]],
    ):
        self.owner = owner
        self.job_id = job_id
        self.check_seconds = check_seconds
        self.on_gone = on_gone
        self._callback: PeriodicCallback | None = None
        self._missed = 0

    def start(self, worker: Worker) -> None:
        """Start checking, on the worker's event loop.

        Args:
            worker: The worker whose scheduler connection is used.
        """
        self._callback = PeriodicCallback(
            partial(self._check, worker), self.check_seconds * 1000
        )
        self._callback.start()

    def stop(self) -> None:
        """Stop checking; stopping a watch that is not running does nothing."""
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    async def _check(self, worker: Worker) -> None:
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
        self._missed = self._missed + 1 if gone else 0
        if self._missed < 2:
            return
        logger.warning(
            "The flow that started parallel-run job %s has disconnected from the scheduler "
            "(its process was killed, or lost its connection): stopping the job's "
            "entry-script processes. Run the step again to resume the job.",
            self.job_id,
        )
        self.stop()
        await self.on_gone(worker)
