"""`AttemptResult`: what one attempt of one mini-batch came to, as the dispatcher receives it.

Every message the worker side writes about an attempt (a timeout, a dead process, a failed
start, a stop) is a named constructor of `AttemptResult`, so that the texts a user reads live
here and nowhere else. Each takes the attempt's `AttemptRecord` (`attempt_record.py`), which
adds where it happened and builds the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from prefect_parallelrun.execute.protocol import RunReply, StartFailed

if TYPE_CHECKING:
    from prefect_parallelrun.execute.attempt_record import AttemptRecord

AttemptStatus = Literal["succeeded", "failed", "timeout", "process_died", "init_failed"]


@dataclass(frozen=True)
class AttemptResult:
    """One attempt of one mini-batch in one entry-script process.

    `status` is "succeeded" when run() returned a list, tuple or DataFrame, even a short one
    (then `failed_items` > 0 and `warnings` says so). `error` is a message for the user,
    `traceback` the script's own. `fatal` means retrying is pointless and the job should end:
    the script failed to start `max_failed_starts` times in a row in one slot, or the worker
    lacks required packages. Until run() has read the mini-batch, `items` is the planned
    `item_count` (0 when unknown). Made by the named constructors below.

    Args:
        mini_batch_id: The mini-batch's id.
        mini_batch_index: The mini-batch's position in the job.
        attempt: The attempt's number (the first is 1).
        node: The worker's name in the job.
        process: The process slot's name ("-" when no process was started).
        started_at: When run() (or the attempt, if run() was never asked) started: `time.time()`.
        seconds: How long it took.
        items: The mini-batch's items.
        succeeded_items: Items with a result.
        failed_items: `items - succeeded_items`.
        status: How the attempt ended.
        error: The message for the user; None when it succeeded.
        traceback: The script's traceback, if any.
        staged_rows: Where the append_row rows were staged; None without any.
        log_records: What the script logged during run(): `(level name, message)` pairs.
        warnings: What the user should know about a good result.
        fatal: Retrying is pointless: the job should end.
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
        """Whether run() returned a result (a short one too)."""
        return self.status == "succeeded"

    @classmethod
    def from_reply(cls, record: AttemptRecord, reply: RunReply) -> AttemptResult:
        """run() returned (or raised) in the process, which judged the result itself.

        Args:
            record: The attempt's record (where it ran, its clock).
            reply: The process's reply.

        Returns:
            A "succeeded" result when the reply has no `error`, else a "failed" one.
        """
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
        """The job was stopped (aborted or cancelled) before or while the attempt ran.

        Args:
            record: The attempt's record (where it ran, its clock).
            items: The mini-batch's items when known; None: as planned.

        Returns:
            A "failed" result.
        """
        items = record.declared_items if items is None else items
        cause = "the job was stopped while it ran; it is not finished."
        return record.finish("failed", items, cause=cause)

    @classmethod
    def timed_out(cls, record: AttemptRecord, items: int, timeout: float) -> AttemptResult:
        """run() outlived `run_invocation_timeout` and its process was killed.

        Args:
            record: The attempt's record (where it ran, its clock).
            items: The mini-batch's items.
            timeout: The `run_invocation_timeout` it outlived, in seconds.

        Returns:
            A "timeout" result.
        """
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
        """The process ended while it ran the mini-batch.

        Args:
            record: The attempt's record (where it ran, its clock).
            items: The mini-batch's items.
            exit_description: How the process ended (`describe_exit`).

        Returns:
            A "process_died" result.
        """
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
        """The process could not import the script or run init().

        Args:
            record: The attempt's record (where it ran, its clock).
            failure: What the process (or the worker) said.
            failed_starts: Failed starts in a row in the slot, this one included.
            max_failed_starts: From this many on, the result is `fatal`.

        Returns:
            An "init_failed" result.
        """
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
        """The worker lacks pip requirements of the job: no process was started.

        Args:
            record: The attempt's record (where it ran, its clock).
            missing: The requirements the worker lacks.

        Returns:
            A `fatal` "init_failed" result.
        """
        cause = f"this worker lacks packages the job requires: {', '.join(missing)}."
        return record.finish("init_failed", record.declared_items, cause=cause, fatal=True)


def sentence(text: str) -> str:
    """End a piece of a message with a full stop.

    Args:
        text: The piece.

    Returns:
        `text` without trailing spaces, ending with ".", "!" or "?".
    """
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
