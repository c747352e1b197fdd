"""How many consecutive mini-batches the next task run covers.

Prefect records every task run, at a cost of milliseconds in the flow process and in the API
server; for mini-batches of a few milliseconds that cost would be the job. With
`mini_batches_per_task="auto"`, the first task runs cover one mini-batch each; once
mini-batches have been timed, a task run covers as many consecutive ones as make about
`target_seconds` of work (the `group_target_seconds` setting), but never so many that a
process slot would sit idle at the end of the job. Mini-batches of `target_seconds` or more
always get a task run each.
"""

from __future__ import annotations

import math
import threading
from typing import Literal

AUTO: Literal["auto"] = "auto"

MiniBatchesPerTask = int | Literal["auto"]


def check_mini_batches_per_task(value: object) -> MiniBatchesPerTask:
    """Check a `mini_batches_per_task` value from Python, the command line or the run form.

    Args:
        value: A positive int, its digits as a string, or "auto" (any case).

    Returns:
        The positive int, or "auto".

    Raises:
        ValueError: Anything else; the message names the value and the choices.
    """
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(
        f"mini_batches_per_task must be a positive whole number or 'auto'; got {value!r}. "
        "Use 1 for one Prefect task run per mini-batch, or 'auto' to let short mini-batches "
        "share a task run."
    )


def group_size(
    mini_batches_per_task: MiniBatchesPerTask,
    mean_seconds: float | None,
    remaining: int,
    slots: int,
    *,
    target_seconds: float,
    tail_task_runs_per_slot: int,
) -> int:
    """The number of mini-batches for the next task run (at least 1, at most `remaining`).

    A pure function: the job passes in its settings and what it has measured so far.

    Args:
        mini_batches_per_task: A fixed number per task run, or "auto".
        mean_seconds: The mean time of a mini-batch's run() so far; None before the first
            has finished.
        remaining: The mini-batches not yet handed to a task run.
        slots: The entry-script processes the job keeps busy.
        target_seconds: With "auto": the seconds of work one task run aims to cover.
        tail_task_runs_per_slot: With "auto": task runs kept per slot near the end of the
            job, so that no slot waits idle for the others.

    Returns:
        How many consecutive mini-batches the next task run covers.
    """
    if remaining <= 1:
        return 1
    if mini_batches_per_task != AUTO:
        return min(int(mini_batches_per_task), remaining)
    if mean_seconds is None:
        return 1
    fits = round(target_seconds / max(mean_seconds, 1e-6))
    keeps_slots_busy = math.ceil(remaining / (tail_task_runs_per_slot * max(slots, 1)))
    return max(1, min(fits, keeps_slots_busy, remaining))


class RunTimes:
    """The running mean of mini-batches' run() times, fed from many task threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0.0
        self._count = 0

    def add(self, seconds: float) -> None:
        """Count one mini-batch's run() time.

        Args:
            seconds: How long its run() took.
        """
        with self._lock:
            self._total += seconds
            self._count += 1

    @property
    def mean(self) -> float | None:
        """The mean run() time so far; None before the first."""
        with self._lock:
            return self._total / self._count if self._count else None
