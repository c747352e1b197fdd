"""`ProcessPool`: a job's process slots on one worker, handed to one worker thread at a time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from prefect_parallelrun.execute.process_slot import ProcessSlot


class ProcessPool:
    """The slots of one job on one worker.

    `acquire` hands out a free slot, the most recently used first, so that a worker with
    fewer busy threads than slots keeps reusing the same warm processes; it waits while all
    are busy and returns None once the pool is closed (by `drain` or `stop`).

    Args:
        slots: The job's slots on this worker, in name order.
    """

    def __init__(self, slots: list[ProcessSlot]):
        self.slots = slots
        self._free = list(reversed(slots))
        self._changed = threading.Condition()
        self._closed = False

    def start(self, count: int) -> None:
        """Start the first `count` slots' processes now; they import the script and run init().

        Does not wait for init(); a process that cannot be started is retried, and reported,
        by the first mini-batch of its slot.

        Args:
            count: How many slots to start (all when larger than their number).
        """
        for slot in self.slots[:count]:
            slot.start()

    def acquire(self) -> ProcessSlot | None:
        """Take a free slot for one worker thread, waiting while all are in use.

        Returns:
            The most recently released free slot; None once the pool is closed.
        """
        with self._changed:
            while not self._free and not self._closed:
                self._changed.wait()
            return None if self._closed else self._free.pop()

    def release(self, slot: ProcessSlot) -> None:
        """Give back a slot taken with `acquire`, waking one waiting thread.

        Args:
            slot: The slot, done with.
        """
        with self._changed:
            self._free.append(slot)
            self._changed.notify()

    def drain(self, timeout: float) -> list[str]:
        """Close the pool and shut every process down normally (shutdown() in each), in parallel.

        Args:
            timeout: Seconds to wait for running mini-batches, init() and shutdown(); processes
                still busy then are killed.

        Returns:
            One message per shutdown() that raised (`<node>/<process>: <error>` and its
            traceback); empty when none did.
        """
        self._close()
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(max_workers=len(self.slots) or 1) as executor:
            replies = list(executor.map(lambda slot: slot.shutdown(deadline), self.slots))
        return [
            f"{slot.node}/{slot.name}: {reply.error}\n{reply.traceback or ''}".rstrip()
            for slot, reply in zip(self.slots, replies, strict=True)
            if reply is not None and reply.error is not None
        ]

    def stop(self) -> None:
        """Kill every process now; waiting and running mini-batches end as stopped."""
        self._close()
        for slot in self.slots:
            slot.kill()

    def _close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
