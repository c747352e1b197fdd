"""`AttemptRecord`: one attempt of one mini-batch while it runs, timed, and the builder of its
`AttemptResult` (`results.py`), whose `error` it completes with where the attempt ran and where
the script's output is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prefect_parallelrun.execute.results import AttemptResult, AttemptStatus, sentence


@dataclass
class AttemptRecord:
    """Times one attempt of one mini-batch and builds its `AttemptResult`, with messages that
    say where it ran and what to do.

    The clock starts when the record is made; `restart_clock` restarts it when run() starts.

    Args:
        mini_batch: The mini-batch (its `id`, `index`, `item_count` and `describe()` are read).
        attempt: The attempt's number (the first is 1).
        node: The worker's name in the job.
        process: The process slot's name ("-" when no process was started).
        stderr_file: The process's stderr file, which error messages point to.
    """

    mini_batch: Any
    attempt: int
    node: str
    process: str
    stderr_file: str
    started_at: float = field(default_factory=time.time, init=False)
    """When the attempt (or its run) started, as `time.time()`."""
    _started: float = field(default_factory=time.monotonic, init=False, repr=False)

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
        """The attempt's result, timed from the start of the clock to now.

        Args:
            status: How the attempt ended.
            items: The mini-batch's items (as read, or as planned when it was not read).
            succeeded_items: Items with a result; the others count as failed.
            cause: What went wrong, which becomes the full `error` message (with where it
                happened and where the script's output is); None when nothing did.
            **details: Other `AttemptResult` fields (`traceback`, `log_records`, `fatal`...).

        Returns:
            The result.
        """
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


def describe_mini_batch(mini_batch: Any) -> str:
    """Name a mini-batch for messages; never raises.

    Args:
        mini_batch: The mini-batch (its `index`, `id` and `describe()` are read).

    Returns:
        `mini-batch 3 (id ..., what it holds)`.
    """
    try:
        what = mini_batch.describe()
    except Exception:
        what = None
    details = f"id {mini_batch.id}" + (f": {what}" if what else "")
    return f"mini-batch {mini_batch.index} ({details})"
