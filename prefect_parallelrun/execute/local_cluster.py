"""The `"local"` compute target: a Dask scheduler and workers in processes of their own.

Distributed's `SubprocessCluster` starts them as `python -m dask spec` commands, as
`dask scheduler` and `dask worker` would be started, not through multiprocessing's spawn: a
user's plain script (no `if __name__ == "__main__":` guard) is never imported again by a
worker, and the scheduler's CPU is not taken from the flow process, which has the job's
bookkeeping to do.

Processes started by a command outlive a parent that is killed outright (SIGKILL, out of
memory), so this module is also the scheduler's preload: it closes itself once the process
that started it has gone, and closing tells every worker and nanny to close, which stops the
job's entry-script processes.

The scheduler (in its preload) and each nanny (`OwnGroupNanny`, with its worker process) move
into a process group of their own: Ctrl-C in a terminal signals the whole foreground group,
and a cluster that closed at once would leave the flow process, which gets the
KeyboardInterrupt and ends the job in order, waiting on workers that are already gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from distributed import Nanny

PARENT_CHECK_MILLISECONDS = 1000


def local_cluster(
    n_workers: int,
    threads_per_worker: int,
    dask_log_level: int = logging.WARNING,
) -> Any:
    """A started SubprocessCluster of `n_workers` nannies with `threads_per_worker` threads."""
    from distributed.deploy.subprocess import SubprocessCluster

    # It logs each command it runs at INFO, in this process.
    starting = logging.getLogger("distributed.deploy.subprocess")
    previous = starting.level
    starting.setLevel(max(dask_log_level, previous))
    try:
        return SubprocessCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            dashboard_address=None,  # type: ignore[arg-type]  # None: no dashboard
            silence_logs=dask_log_level,
            scheduler_kwargs={"preload": [__name__]},
            worker_class=f"{__name__}.OwnGroupNanny",
        )
    finally:
        starting.setLevel(previous)


def dask_setup(server: Any) -> None:
    """Preload hook, run in the scheduler as it starts."""
    from tornado.ioloop import PeriodicCallback

    _leave_foreground_process_group()

    # Its stderr is a pipe that nobody reads: keep it to what matters, so it never fills.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    parent = os.getppid()

    def close_if_orphaned() -> None:
        if os.getppid() != parent:
            watch.stop()
            asyncio.ensure_future(server.close())

    watch = PeriodicCallback(close_if_orphaned, PARENT_CHECK_MILLISECONDS)
    watch.start()


def _leave_foreground_process_group() -> None:
    """Out of the terminal's foreground process group (see the module's docstring)."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)


class OwnGroupNanny(Nanny):
    """A nanny in a process group of its own; the worker process it starts joins that group."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _leave_foreground_process_group()
        super().__init__(*args, **kwargs)
