"""How many consecutive mini-batches the next task run covers.

Prefect records every task run, at a cost of milliseconds in the flow process and in the API
server; for mini-batches of a few milliseconds that cost would be the job. With
`mini_batches_per_task="auto"`, the first task runs cover one mini-batch each; once
mini-batches have been timed, a task run covers as many consecutive ones as make about
`TARGET_SECONDS` of work, but never so many that a process slot would sit idle at the end of
the job. Mini-batches of `TARGET_SECONDS` or more always get a task run each.
"""

from __future__ import annotations

import math
import threading
from typing import Literal

AUTO: Literal["auto"] = "auto"
TARGET_SECONDS = 2.0
# Task runs queued per process slot near the end of the job, so no slot waits for the others.
TAIL_TASK_RUNS_PER_SLOT = 2

MiniBatchesPerTask = int | Literal["auto"]


def check_mini_batches_per_task(value: object) -> MiniBatchesPerTask:
    """A positive int or "auto" (any case); anything else is a ValueError naming the value."""
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
) -> int:
    """The number of mini-batches for the next task run (at least 1, at most `remaining`).

    `mean_seconds` is the mean time of a mini-batch's run() so far (None before the first
    has finished); `remaining` the mini-batches not yet handed to a task run; `slots` the
    entry-script processes the job keeps busy.
    """
    if remaining <= 1:
        return 1
    if mini_batches_per_task != AUTO:
        return min(int(mini_batches_per_task), remaining)
    if mean_seconds is None:
        return 1
    fits = round(TARGET_SECONDS / max(mean_seconds, 1e-6))
    keeps_slots_busy = math.ceil(remaining / (TAIL_TASK_RUNS_PER_SLOT * max(slots, 1)))
    return max(1, min(fits, keeps_slots_busy, remaining))


class RunTimes:
    """The running mean of mini-batches' run() times, fed from many task threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0.0
        self._count = 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._total += seconds
            self._count += 1

    @property
    def mean(self) -> float | None:
        with self._lock:
            return self._total / self._count if self._count else None
