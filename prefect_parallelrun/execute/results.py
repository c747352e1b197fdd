"""`AttemptResult`: what one attempt of one mini-batch came to, as the dispatcher receives it.

Also `AttemptRecord`, which times an attempt and builds its result, and every message the worker
side writes about an attempt (a timeout, a dead process, a failed start, a stop), each a named
constructor of `AttemptResult`, so that the texts a user reads live here and nowhere else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from prefect_parallelrun.execute.protocol import RunReply, StartFailed

AttemptStatus = Literal["succeeded", "failed", "timeout", "process_died", "init_failed"]


@dataclass(frozen=True)
class AttemptResult:
    """One attempt of one mini-batch in one entry-script process.

    `status` is "succeeded" when run() returned a list, tuple or DataFrame, even a short one
    (then `failed_items` > 0 and `warnings` says so). `error` is a message for the user,
    `traceback` the script's own. `fatal` means retrying is pointless and the job should end:
    the script failed to start `max_failed_starts` times in a row in one slot, or the worker
    lacks required packages. Until run() has read the mini-batch, `items` is the planned
    `item_count` (0 when unknown).
    """

    mini_batch_id: str
    mini_batch_index: int
    attempt: int
    node: str
    process: str
    started_at: float
    seconds: float
    items: int
    succeeded_items: int
    failed_items: int
    status: AttemptStatus
    error: str | None = None
    traceback: str | None = None
    staged_rows: str | None = None
    log_records: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fatal: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @classmethod
    def from_reply(cls, record: AttemptRecord, reply: RunReply) -> AttemptResult:
        """run() returned (or raised) in the process, which judged the result itself."""
        details = {
            "traceback": reply.traceback,
            "staged_rows": reply.staged_rows,
            "log_records": reply.log_records,
            "warnings": reply.warnings,
        }
        status: AttemptStatus = "succeeded" if reply.error is None else "failed"
        return record.finish(
            status, reply.items, reply.succeeded_items, cause=reply.error, **details
        )

    @classmethod
    def stopped(cls, record: AttemptRecord, items: int | None = None) -> AttemptResult:
        """The job was stopped (aborted or cancelled) before or while the attempt ran."""
        items = record.declared_items if items is None else items
        cause = "the job was stopped while it ran; it is not finished."
        return record.finish("failed", items, cause=cause)

    @classmethod
    def timed_out(cls, record: AttemptRecord, items: int, timeout: float) -> AttemptResult:
        """run() outlived `run_invocation_timeout` and its process was killed."""
        cause = (
            f"run() did not return within run_invocation_timeout={timeout:g} seconds, so its "
            "process was killed; the next mini-batch in this slot starts a new one (init() "
            "runs again). Raise run_invocation_timeout, or make mini-batches smaller."
        )
        return record.finish("timeout", items, cause=cause)

    @classmethod
    def process_died(
        cls, record: AttemptRecord, items: int, exit_description: str
    ) -> AttemptResult:
        """The process ended while it ran the mini-batch (`exit_description`: how it ended)."""
        cause = (
            f"the entry-script process died while running it ({exit_description}); the next "
            "mini-batch in this slot starts a new process. A crash in native code, os._exit() "
            "or the out-of-memory killer (SIGKILL) ends a process this way; the end of its "
            "stderr file may tell which."
        )
        return record.finish("process_died", items, cause=cause)

    @classmethod
    def start_failed(
        cls, record: AttemptRecord, failure: StartFailed, failed_starts: int, max_failed_starts: int
    ) -> AttemptResult:
        """The process could not import the script or run init(): the `failed_starts`-th time
        in a row in its slot, which is fatal from `max_failed_starts` on."""
        fatal = failed_starts >= max_failed_starts
        cause = f"the entry script could not start. {sentence(failure.error)}"
        if fatal:
            cause += (
                f" The script has now failed to start {failed_starts} times in a row in "
                "this process slot, so the job should stop: fix the script's import or init() "
                "and run the job again."
            )
        else:
            cause += " The next mini-batch in this slot starts a new process."
        return record.finish(
            "init_failed",
            record.declared_items,
            cause=cause,
            traceback=failure.traceback,
            fatal=fatal,
        )

    @classmethod
    def missing_packages(cls, record: AttemptRecord, missing: list[str]) -> AttemptResult:
        """The worker lacks pip requirements of the job: fatal, no process was started."""
        cause = f"this worker lacks packages the job requires: {', '.join(missing)}."
        return record.finish("init_failed", record.declared_items, cause=cause, fatal=True)


def could_not_spawn(exc: OSError) -> StartFailed:
    """The worker could not start the process at all (no memory, too many processes...)."""
    return StartFailed(f"The process could not be started: {exc}.", None)


def init_timed_out(timeout: float) -> StartFailed:
    """Importing the script and init() outlived `init_timeout`."""
    return StartFailed(f"init() did not return within init_timeout={timeout:g} seconds.", None)


def died_while_starting(exit_description: str) -> StartFailed:
    """The process ended before it said it was ready."""
    return StartFailed(f"The process died while starting ({exit_description}).", None)


def describe_mini_batch(mini_batch: Any) -> str:
    """`mini-batch 3 (id ..., what it holds)`, for messages; never raises."""
    try:
        what = mini_batch.describe()
    except Exception:
        what = None
    details = f"id {mini_batch.id}" + (f": {what}" if what else "")
    return f"mini-batch {mini_batch.index} ({details})"


class AttemptRecord:
    """Builds the `AttemptResult` of one attempt, with messages that say where and what to do."""

    def __init__(self, mini_batch: Any, attempt: int, node: str, process: str, stderr_file: str):
        self.mini_batch = mini_batch
        self.attempt = attempt
        self.node = node
        self.process = process
        self.stderr_file = stderr_file
        self.started_at = time.time()
        self._started = time.monotonic()

    @property
    def declared_items(self) -> int:
        """The mini-batch's item count as planned, for attempts that end before it is read."""
        return getattr(self.mini_batch, "item_count", None) or 0

    def restart_clock(self) -> None:
        """Start timing the run itself (waiting for init() is not part of it)."""
        self.started_at = time.time()
        self._started = time.monotonic()

    def finish(
        self,
        status: AttemptStatus,
        items: int,
        succeeded_items: int = 0,
        cause: str | None = None,
        **details: Any,
    ) -> AttemptResult:
        """The result; `cause` (what went wrong) becomes the full `error` message."""
        return AttemptResult(
            mini_batch_id=self.mini_batch.id,
            mini_batch_index=self.mini_batch.index,
            attempt=self.attempt,
            node=self.node,
            process=self.process,
            started_at=self.started_at,
            seconds=round(time.monotonic() - self._started, 6),
            items=items,
            succeeded_items=succeeded_items,
            failed_items=items - succeeded_items,
            status=status,
            error=None if cause is None else self._explain(cause),
            **details,
        )

    def _explain(self, cause: str) -> str:
        label = describe_mini_batch(self.mini_batch)
        return (
            f"{label[:1].upper()}{label[1:]} failed on attempt {self.attempt} in {self.process} "
            f"on node {self.node}: {sentence(cause)} The script's output is in {self.stderr_file} "
            "(and .stdout.txt)."
        )


def sentence(text: str) -> str:
    """`text` ending with a full stop, for messages built from pieces."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
