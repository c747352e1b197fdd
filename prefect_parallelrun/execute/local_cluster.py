"""The `"local"` compute target: a Dask scheduler and workers in processes of their own.

Distributed's `SubprocessCluster` starts them as `python -m dask spec` commands, as
`dask scheduler` and `dask worker` would be started, not through multiprocessing's spawn: a
user's plain script (no `if __name__ == "__main__":` guard) is never imported again by a
worker, and the scheduler's CPU is not taken from the flow process, which has the job's
bookkeeping to do.

Processes started by a command outlive a parent that is killed outright (SIGKILL, out of
memory), so this module is also the scheduler's preload: it closes itself once the process
that started it has gone, and closing tells every worker and nanny to close, which stops the
job's entry-script processes. How often it looks is the `local_cluster_parent_check_seconds`
setting, read where the cluster is started and given to the preload as its argument: the
scheduler process imports neither Prefect nor the settings.

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

import click
from distributed import Nanny


def local_cluster(
    n_workers: int,
    threads_per_worker: int,
    dask_log_level: int = logging.WARNING,
) -> Any:
    """Start a local cluster: a scheduler and `n_workers` nannies, each a command of its own.

    Reads `local_cluster_parent_check_seconds` from the settings, for the scheduler's check
    that this process still lives.

    Args:
        n_workers: How many worker processes (each with its nanny) to start.
        threads_per_worker: Threads of each worker: one per process slot.
        dask_log_level: The level below which the cluster's log lines are dropped.

    Returns:
        The started `distributed.deploy.subprocess.SubprocessCluster`; close it when done.

    Raises:
        ValueError: A setting's value is invalid.
    """
    # Here, not at the top: the scheduler process imports this module as its preload.
    from distributed.deploy.subprocess import SubprocessCluster

    from prefect_parallelrun.settings import get_settings

    parent_check_seconds = get_settings().local_cluster_parent_check_seconds
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
            scheduler_kwargs={
                "preload": [__name__],
                "preload_argv": ["--parent-check-seconds", repr(parent_check_seconds)],
            },
            worker_class=f"{__name__}.OwnGroupNanny",
        )
    finally:
        starting.setLevel(previous)


@click.command()
@click.option("--parent-check-seconds", type=float, required=True)
def dask_setup(server: Any, parent_check_seconds: float) -> None:
    """Preload hook, run in the scheduler as it starts: close it once its parent has gone.

    Args:
        server: The scheduler being started.
        parent_check_seconds: How often to check that the process which started the
            scheduler still lives.
    """
    from tornado.ioloop import PeriodicCallback

    _leave_foreground_process_group()

    # Its stderr is a pipe that nobody reads: keep it to what matters, so it never fills.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    parent = os.getppid()

    def close_if_orphaned() -> None:
        if os.getppid() != parent:
            watch.stop()
            asyncio.ensure_future(server.close())

    watch = PeriodicCallback(close_if_orphaned, parent_check_seconds * 1000)
    watch.start()


def _leave_foreground_process_group() -> None:
    """Out of the terminal's foreground process group (see the module's docstring)."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)


class OwnGroupNanny(Nanny):
    """A nanny in a process group of its own; the worker process it starts joins that group.

    Args:
        *args: `distributed.Nanny`'s positional arguments.
        **kwargs: `distributed.Nanny`'s keyword arguments.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _leave_foreground_process_group()
        super().__init__(*args, **kwargs)
