"""`ProcessSlot`: a place for one entry-script process on a worker, which it starts, watches
and replaces, as distributed's Nanny does for a worker, and `SlotStatus`, its lifecycle.
The process itself is an `EntryScriptProcess` (`entry_process.py`); what an attempt came to,
with the message the user reads about it, is an `AttemptResult` (`results.py`).

Over 250 lines because it is one state machine: every method reads and changes the slot's
status and process together under one condition, and splitting it would spread that
invariant over modules.
"""

from __future__ import annotations

import enum
import threading
import time
from typing import Any

from prefect_parallelrun.execute.attempt_record import AttemptRecord
from prefect_parallelrun.execute.entry_process import EntryScriptProcess, NoReply, output_files
from prefect_parallelrun.execute.process_spec import ProcessSpec
from prefect_parallelrun.execute.protocol import (
    Ready,
    RunReply,
    RunRequest,
    RunStarted,
    ShutdownReply,
    ShutdownRequest,
    StartFailed,
)
from prefect_parallelrun.execute.results import AttemptResult
from prefect_parallelrun.execute.script_errors import (
    could_not_spawn,
    died_while_starting,
    init_timed_out,
)


class SlotStatus(enum.Enum):
    """Where a process slot is in its life.

    A slot is free in `EMPTY`, `SPAWNED` and `READY`; in the other states but `STOPPED` one
    thread holds it, and the others wait for it to be free again (or give up).
    """

    EMPTY = "empty"  # no process: the next mini-batch starts one
    SPAWNED = "spawned"  # a process was started ahead of use; its init() may still run
    READY = "ready"  # the process has run init() and waits for a mini-batch
    STARTING = "starting"  # a thread starts a process, or waits for its init() to return
    RUNNING = "running"  # a thread runs a mini-batch in the process
    CLOSING = "closing"  # a thread calls shutdown() in the process: the job drains
    STOPPING = "stopping"  # stopped while held: the process is killed, its holder cleans up
    STOPPED = "stopped"  # for good: no process, and none will be started


_HELD = {SlotStatus.STARTING, SlotStatus.RUNNING, SlotStatus.CLOSING, SlotStatus.STOPPING}


class ProcessSlot:
    """A place for one entry-script process on one worker.

    One worker thread at a time uses a slot (the `ProcessPool` hands it out). The process is
    started at the first use (or eagerly by `start`), kept for the next mini-batches, and
    replaced after a timeout, a crash or a failed start. `kill` may be called from any thread.

    Args:
        spec: The job's process settings.
        node: The worker's name in the job.
        name: The slot's name (`process001`...), also its processes' name.
        work_dir: The worker's folder under which each process gets a private folder.
        cuda_device: The `CUDA_VISIBLE_DEVICES` value of its processes; None: inherited.
    """

    def __init__(
        self, spec: ProcessSpec, node: str, name: str, work_dir: str, cuda_device: str | None
    ):
        self.spec = spec
        self.node = node
        self.name = name
        self._work_dir = work_dir
        self._cuda_device = cuda_device
        self.stderr_file = f"{output_files(spec.logs_dir, node, name)}.stderr.txt"
        # `_status` and `_process` change together, under this one condition.
        self._changed = threading.Condition()
        self._status = SlotStatus.EMPTY
        self._process: EntryScriptProcess | None = None
        self.failed_starts = 0

    @property
    def status(self) -> SlotStatus:
        """Where the slot is in its life."""
        return self._status

    @property
    def pid(self) -> int | None:
        """The current process's id; None when the slot has none."""
        process = self._process
        return None if process is None else process.pid

    def start(self) -> None:
        """Start the process now rather than at the first mini-batch (it does nothing if busy)."""
        held = self._hold(SlotStatus.STARTING, timeout=0)
        if held is None:
            return
        try:
            if held is SlotStatus.EMPTY:
                self._spawn()
        except OSError:
            pass  # the first mini-batch tries again and reports why
        finally:
            self._release(SlotStatus.SPAWNED if held is SlotStatus.EMPTY else held)

    def run(self, mini_batch: Any, attempt: int) -> AttemptResult:
        """Run one mini-batch in this slot's process, starting a process first if needed.

        Waits for the slot to be free, then for the process's init() (`init_timeout`), then
        for run() (`run_invocation_timeout`, timed from when run() is asked). A process that
        fails, times out or dies is retired, and the next mini-batch starts a new one.

        Args:
            mini_batch: The mini-batch, sent to the process as it is.
            attempt: The attempt's number.

        Returns:
            The attempt's result; every failure of the script or its process is one, and a
            slot stopped meanwhile gives a "stopped" one.
        """
        record = AttemptRecord(mini_batch, attempt, self.node, self.name, self.stderr_file)
        held = self._hold(SlotStatus.STARTING)
        if held is None:
            return AttemptResult.stopped(record)
        # Every way out that leaves no ready process retires it, so the slot is then EMPTY.
        try:
            if held is SlotStatus.EMPTY:
                try:
                    self._spawn()
                except OSError as exc:
                    return self._start_failed(record, could_not_spawn(exc))
            process = self._process
            if process is None:
                return AttemptResult.stopped(record)
            if held is not SlotStatus.READY:
                failure = self._wait_ready(process)
                if failure is not None:
                    return self._start_failed(record, failure)
            self.failed_starts = 0
            with self._changed:
                if self._status is SlotStatus.STARTING:
                    self._status = SlotStatus.RUNNING
            record.restart_clock()
            return self._run(process, record)
        finally:
            self._release(SlotStatus.READY)

    def _spawn(self) -> None:
        # Under the lock, so that a `kill` from another thread either sees the new process
        # or prevents it from being started.
        with self._changed:
            if self._status is not SlotStatus.STOPPING:
                self._process = EntryScriptProcess.spawn(
                    self.spec, self.node, self.name, self._work_dir, self._cuda_device
                )

    def _wait_ready(self, process: EntryScriptProcess) -> StartFailed | None:
        timeout = self.spec.init_timeout
        message = process.receive(None if timeout is None else time.monotonic() + timeout)
        if isinstance(message, Ready):
            return None
        if isinstance(message, StartFailed):
            return message
        if message is NoReply.TIMED_OUT and timeout is not None:
            return init_timed_out(timeout)
        return died_while_starting(self._retire())

    def _start_failed(self, record: AttemptRecord, failure: StartFailed) -> AttemptResult:
        self._retire()
        if self._status is SlotStatus.STOPPING:
            return AttemptResult.stopped(record)
        self.failed_starts += 1
        return AttemptResult.start_failed(
            record, failure, self.failed_starts, self.spec.max_failed_starts
        )

    def _run(self, process: EntryScriptProcess, record: AttemptRecord) -> AttemptResult:
        items = record.declared_items
        message: Any = NoReply.DIED
        if process.send(RunRequest(record.mini_batch, record.attempt)):
            deadline = time.monotonic() + self.spec.run_invocation_timeout
            message = process.receive(deadline)
            if isinstance(message, RunStarted):
                items = message.items
                message = process.receive(deadline)
        if isinstance(message, RunReply):
            return AttemptResult.from_reply(record, message)
        exit_description = self._retire()
        if self._status is SlotStatus.STOPPING:
            return AttemptResult.stopped(record, items)
        if message is NoReply.TIMED_OUT:
            return AttemptResult.timed_out(record, items, self.spec.run_invocation_timeout)
        return AttemptResult.process_died(record, items, exit_description)

    def shutdown(self, deadline: float) -> ShutdownReply | None:
        """Call the script's shutdown() in this slot's process and let it exit; then STOPPED.

        Waits for a running mini-batch and for init(); a process still busy at `deadline` is
        killed.

        Args:
            deadline: When to stop waiting (`time.monotonic()` time).

        Returns:
            The process's reply; None when there was no process to shut down, or it did not
            answer in time.
        """
        held = self._hold(SlotStatus.CLOSING, timeout=max(0.0, deadline - time.monotonic()))
        if held is None:
            self.kill()
            return None
        try:
            process = self._process
            if process is None:
                return None
            if held is not SlotStatus.READY and not isinstance(process.receive(deadline), Ready):
                self._retire()
                return None
            reply = None
            if process.send(ShutdownRequest()):
                message = process.receive(deadline)
                reply = message if isinstance(message, ShutdownReply) else None
            with self._changed:
                self._process = None
            process.exit_after(max(0.0, deadline - time.monotonic()))
            return reply
        finally:
            self._release(SlotStatus.STOPPED)

    def kill(self) -> None:
        """Stop for good: kill the process now, and start no other in this slot."""
        with self._changed:
            held = self._status in _HELD
            process = self._process
            if held:
                # The thread holding the slot sees its process die and cleans up itself.
                self._status = SlotStatus.STOPPING
            else:
                self._status, self._process = SlotStatus.STOPPED, None
            self._changed.notify_all()
        if process is not None and held:
            process.kill()
        elif process is not None:
            process.retire()

    def _hold(self, status: SlotStatus, timeout: float | None = None) -> SlotStatus | None:
        """Wait until the slot is free, then hold it in `status`; the free status it had.

        None, and the slot not held, when it is stopped or still held after `timeout` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: self._status not in _HELD, timeout):
                return None
            held = self._status
            if held is SlotStatus.STOPPED:
                return None
            self._status = status
            return held

    def _release(self, free: SlotStatus) -> None:
        """Free the slot in status `free`: EMPTY when it has no process, STOPPED when stopped."""
        with self._changed:
            left = None
            if free is SlotStatus.STOPPED or self._status is SlotStatus.STOPPING:
                self._status = SlotStatus.STOPPED
                left, self._process = self._process, None
            else:
                self._status = free if self._process is not None else SlotStatus.EMPTY
            self._changed.notify_all()
        if left is not None:
            left.retire()

    def _retire(self) -> str:
        with self._changed:
            process, self._process = self._process, None
        return process.retire() if process is not None else "no process"
