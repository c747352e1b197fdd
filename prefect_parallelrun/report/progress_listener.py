"""What a caller in the job's process sees of its progress: `ProgressSnapshot`, and how a
progress listener (the command line's progress bar) is handed to the jobs it starts."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressSnapshot:
    """Where a running job stands, counted in mini-batches.

    `already_done` mini-batches were committed by an earlier run of a resumed job; they count
    as succeeded, but not in `per_second` or `seconds_left`, which measure this run only.
    """

    total: int
    scheduled: int
    succeeded: int
    failed: int
    already_done: int
    elapsed: float
    finished: bool = False

    @property
    def processed(self) -> int:
        """Mini-batches finished, succeeded or failed, earlier runs' included."""
        return self.succeeded + self.failed

    @property
    def per_second(self) -> float | None:
        """Mini-batches processed per second by this run; None before the first one."""
        ran = self.processed - self.already_done
        return ran / self.elapsed if ran and self.elapsed > 0 else None

    @property
    def seconds_left(self) -> float | None:
        """Estimated seconds to the end at this run's pace; None before the first one."""
        remaining = self.total - self.processed
        if not remaining:
            return 0.0
        speed = self.per_second
        return remaining / speed if speed else None

    def line(self) -> str:
        """The job_progress_overview.txt line.

        Returns:
            `scheduled S of T; processed P of T (N succeeded, F failed); estimated time
            left ...`.
        """
        left = self.seconds_left
        eta = "unknown" if left is None else f"{left:.0f} s"
        return (
            f"scheduled {self.scheduled} of {self.total}; processed {self.processed} of "
            f"{self.total} ({self.succeeded} succeeded, {self.failed} failed); "
            f"estimated time left {eta}"
        )


ProgressListener = Callable[[ProgressSnapshot], None]
"""Called with a snapshot when a job's progress starts, at every finished mini-batch and, with
`finished=True`, when dispatch ends. It runs in the job's threads, one call at a time, and must
return quickly."""

# How a listener crosses the flow boundary: a flow's parameters must stay JSON (deployments,
# the UI's run form), and a flow called in this process runs in this context.
_LISTENER: contextvars.ContextVar[ProgressListener | None] = contextvars.ContextVar(
    "parallel_run_progress_listener", default=None
)


@contextmanager
def listening(listener: ProgressListener | None) -> Iterator[None]:
    """Make `listener` the progress listener of the jobs started in this context.

    Args:
        listener: The listener, or None for none.

    Yields:
        Nothing; start the jobs inside the context.
    """
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def current_listener() -> ProgressListener | None:
    """The progress listener set by `listening()` around this job.

    Returns:
        The listener, or None.
    """
    return _LISTENER.get()
