"""`PackagesPlugin`: a job's installed packages put on each worker's paths, and taken off.

Registered under the job's name before its entry-script processes' plugin, so a worker that
joins later installs too, before those processes start. The packages folder goes on the
worker's `sys.path` and on the `PYTHONPATH` its entry-script processes inherit, and comes off
when the last job using it on that worker ends.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import asdict

from distributed import Worker, WorkerPlugin

from prefect_parallelrun.execute.package_install import InstallOutcome, install_requirements
from prefect_parallelrun.settings import get_settings

# On a worker: the jobs using each packages folder, which leaves the paths with the last one.
_FOLDER_USERS: dict[str, int] = {}

logger = logging.getLogger("prefect_parallelrun.worker")


class PackagesPlugin(WorkerPlugin):
    """Installs a job's missing pip requirements on each worker, into a cached folder of its own.

    `setup` is synchronous on purpose: a worker that joins later sets its plugins up in the
    order they were registered, and the job's entry-script processes (the next plugin) must
    find the packages installed when they start.

    Args:
        job_id: The job's id; the plugin's `name` and its event topic derive from it.
        requirements: The job's pip requirements.
        pip_timeout_seconds: How long one worker's pip install may take.
        flow_pid: The flow process's pid, with `flow_host` to refuse installing into a worker
            that runs inside the flow's own process.
        flow_host: The flow process's host name.
    """

    def __init__(
        self, job_id: str, requirements: list[str], pip_timeout_seconds: float,
        flow_pid: int, flow_host: str,
    ):
        self.name = f"parallel-run-packages-{job_id}"
        self.requirements = requirements
        self.pip_timeout_seconds = pip_timeout_seconds
        self.flow_pid = flow_pid
        self.flow_host = flow_host
        self.outcome = InstallOutcome()

    def setup(self, worker: Worker) -> None:
        """Install what the worker lacks into the `packages_dir` setting, read here on the
        worker, and put the folder on its paths; log the outcome as a worker event.

        Args:
            worker: The worker the plugin is set up on.
        """
        if os.getpid() == self.flow_pid and socket.gethostname() == self.flow_host:
            self.outcome = InstallOutcome(error=(
                "the workers run inside the flow's own process, where installing would change "
                "the flow's environment; start the cluster with worker processes "
                "(processes=True)"
            ))
            return
        try:
            packages_dir = get_settings().packages_dir
        except ValueError as error:  # an invalid setting on this worker
            self.outcome = InstallOutcome(error=str(error))
        else:
            self.outcome = install_requirements(
                self.requirements, packages_dir, self.pip_timeout_seconds
            )
        if self.outcome.error is not None:
            logger.warning("Could not install the job's packages: %s", self.outcome.error)
        if self.outcome.folder is not None:
            _add_to_paths(self.outcome.folder)
        worker.log_event(self.name, {"worker": worker.address, **asdict(self.outcome)})

    def teardown(self, worker: Worker) -> None:
        """Take the packages folder off the worker's paths, unless another job still uses it.

        Args:
            worker: The worker the plugin is torn down on.
        """
        if self.outcome.folder is not None:
            _remove_from_paths(self.outcome.folder)


def worker_outcome(plugin_name: str, dask_worker: Worker) -> InstallOutcome:
    """On a worker, through `Client.run`: what its `PackagesPlugin` did.

    Args:
        plugin_name: The plugin's name.
        dask_worker: The worker (given by `Client.run`).

    Returns:
        The plugin's outcome on that worker.
    """
    outcome: InstallOutcome = dask_worker.plugins[plugin_name].outcome  # type: ignore[attr-defined]
    return outcome


def _python_path() -> list[str]:
    return [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]


def _add_to_paths(folder: str) -> None:
    _FOLDER_USERS[folder] = _FOLDER_USERS.get(folder, 0) + 1
    if folder not in sys.path:
        sys.path.insert(0, folder)
    entries = _python_path()
    if folder not in entries:
        os.environ["PYTHONPATH"] = os.pathsep.join([folder, *entries])


def _remove_from_paths(folder: str) -> None:
    _FOLDER_USERS[folder] = _FOLDER_USERS.get(folder, 1) - 1
    if _FOLDER_USERS[folder] > 0:
        return  # another job on this worker still runs with these packages
    del _FOLDER_USERS[folder]
    if folder in sys.path:
        sys.path.remove(folder)
    entries = _python_path()
    if folder in entries:
        entries.remove(folder)
        if entries:
            os.environ["PYTHONPATH"] = os.pathsep.join(entries)
        else:
            os.environ.pop("PYTHONPATH", None)
