"""`AttemptResult`: what one attempt of one mini-batch came to, as the dispatcher receives it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

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
