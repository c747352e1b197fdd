"""Building a job's `environment` on the workers, for a `DaskCompute(install_environment=True)`.

Opt-in: by default the workers are only checked (`environment.check_environment`). Installing,
each worker, before the first mini-batch:

- checks the interpreter against a conda-style `python=X.Y`, and the conda-only packages (not
  pip's to install) against its Python and its `conda-meta`; anything wrong fails the job at
  once, saying to use a prebuilt image or conda on the workers;
- installs the pip requirements its Python lacks with `pip install --target` into a folder of
  its own, `<packages dir>/py<X.Y>-<hash of the requirements>`, never into the workers' (or the
  flow's) environment: the local cluster's workers share the flow's virtual environment. The
  packages dir is the `packages_dir` setting on that worker
  (`$PREFECT_PARALLELRUN_PACKAGES_DIR`, else `~/.cache/prefect-parallelrun/packages`). The
  folder is then put on the worker's `sys.path` and on the `PYTHONPATH` its entry-script
  processes inherit, and taken off when the job ends;
- finds that folder ready when an earlier job installed the same requirements (the cache):
  nothing is installed then.

The install runs in a worker plugin registered under the job's name, so a worker that joins
later installs too, before its entry-script processes start.

This module is the flow's side: it decides, checks, registers the plugin and reports. Reading
the `environment` is `environment_needs`; the pip install into the cache, `package_install`;
the plugin that puts it on the workers' paths, `packages_plugin`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect_parallelrun.execute.environment import Environment, check_environment
from prefect_parallelrun.execute.environment_needs import conda_problems, read_environment
from prefect_parallelrun.execute.package_install import InstallOutcome
from prefect_parallelrun.execute.packages_plugin import PackagesPlugin, worker_outcome
from prefect_parallelrun.execute.worker_plugin import unregister_plugin
from prefect_parallelrun.settings import get_settings


class EnvironmentInstallError(RuntimeError):
    """The workers cannot be given the job's environment; the message says why and what to do."""


def installs_environment(compute_target: Any, load_block: Callable[[str], Any]) -> bool:
    """Whether the config's compute target asks for its `environment` to be installed.

    Only a `DaskCompute` block can ask (`install_environment=True`); "local" and scheduler
    addresses cannot, so a saved block is loaded by name to read its field.

    Args:
        compute_target: The config's `compute_target`.
        load_block: Loads a saved `DaskCompute` block by name.

    Returns:
        True when the target is a block with `install_environment=True`.

    Raises:
        Exception: Whatever `load_block` raises for a name with no saved block.
    """
    if isinstance(compute_target, str):
        name = compute_target.strip()
        if name.lower() in ("local", "task_runner") or "://" in name:
            return False
        compute_target = load_block(name)
    return bool(getattr(compute_target, "install_environment", False))


@contextmanager
def environment_on_workers(
    client: Any, environment: Environment, install: bool, job_id: str,
    log: logging.Logger | logging.LoggerAdapter,
) -> Iterator[list[str]]:
    """Check (or, with `install`, build) the job's environment on every worker for the job.

    First waits up to `first_worker_timeout_seconds` (a setting) for a worker; with
    `install`, each worker's pip install may take `pip_timeout_seconds`.

    Args:
        client: The job's `distributed.Client`.
        environment: The config's `environment`.
        install: Install what the workers lack, rather than only check.
        job_id: The job's id, for the install plugin's name.
        log: The job's logger, told what each worker installed.

    Returns:
        A context manager yielding the pip requirements, for `ProcessSpec.requirements`; on
        leaving, the installed packages' folder is taken off the workers' paths.

    Raises:
        MissingPackagesError: Without `install`, a worker lacks a package.
        EnvironmentInstallError: With `install`, a worker has the wrong Python, lacks a
            conda-only package, or pip could not install a requirement.
        ValueError: A setting's value is invalid.
    """
    settings = get_settings()
    needs = read_environment(environment)
    if not (needs.pip or needs.conda or needs.python):
        yield []
        return
    _wait_for_a_worker(client, settings.first_worker_timeout_seconds)
    if not install:
        yield check_environment(client, environment)
        return
    _raise_for_conda_problems(client.run(conda_problems, needs))
    if not needs.pip:
        yield []
        return
    plugin = PackagesPlugin(
        job_id, needs.pip, settings.pip_timeout_seconds, os.getpid(), socket.gethostname()
    )
    reporter = _InstallReporter(log)
    client.subscribe_topic(plugin.name, reporter.on_event)  # workers that join later
    try:
        client.register_plugin(plugin, name=plugin.name)
        reporter.report(client.run(worker_outcome, plugin.name))
        yield needs.pip
    finally:
        client.unsubscribe_topic(plugin.name)
        unregister_plugin(client, plugin.name)


def _wait_for_a_worker(client: Any, timeout: float) -> None:
    # Nothing can run before a worker is there; waiting for one lets a missing package (or a
    # failed install) fail the job up front, not in its first mini-batch. Not for ever: an
    # adaptive cluster may start workers only once there is work; those are handled when they
    # join (the worker plugin).
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        pass


def _raise_for_conda_problems(found: dict[str, list[str]]) -> None:
    problems = {worker: listed for worker, listed in found.items() if listed}
    if not problems:
        return
    where = "; ".join(f"on {worker}: {', '.join(listed)}" for worker, listed in problems.items())
    raise EnvironmentInstallError(
        f"The workers cannot run the job's environment ({where}). Only its pip requirements "
        "can be installed on the workers; the Python version and conda packages must be "
        "there already: use a worker image that has them, or create the workers' environment "
        "with conda (conda env create -f <the environment file>)."
    )


class _InstallReporter:
    """Says in the job log what each worker installed where, once per worker: those there at
    the start through `report`, which raises when one failed; later ones through their event."""

    def __init__(self, log: logging.Logger | logging.LoggerAdapter):
        self.log = log
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    def report(self, outcomes: dict[str, InstallOutcome]) -> None:
        failed = {worker: outcome.error for worker, outcome in outcomes.items() if outcome.error}
        if failed:
            where = "; ".join(f"on {worker}: {error}" for worker, error in failed.items())
            raise EnvironmentInstallError(
                f"Could not install the job's environment on the workers ({where}). No "
                "mini-batch was run. Fix the requirement (its name, its version, the workers' "
                "access to the package index), or install it on the workers yourself."
            )
        for worker, outcome in outcomes.items():
            self._say(worker, outcome)

    def on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        _, message = event
        worker = message.pop("worker")
        self._say(worker, InstallOutcome(**message))

    def _say(self, worker: str, outcome: InstallOutcome) -> None:
        with self._lock:
            if worker in self._reported:
                return
            self._reported.add(worker)
        if outcome.error:
            self.log.warning(
                "Could not install the job's environment on %s, which joined the cluster "
                "after the job started (%s); mini-batches sent to it fail, naming what it lacks.",
                worker, outcome.error,
            )
        elif outcome.installed:
            self.log.info(
                "Installed %s on %s into %s in %.1f s.",
                ", ".join(outcome.installed), worker, outcome.folder, outcome.seconds,
            )
        elif outcome.folder is not None:
            self.log.info(
                "The job's environment is already installed on %s (%s): nothing to install.",
                worker, outcome.folder,
            )
        else:
            self.log.info(
                "The Python of %s already has the job's environment: nothing to install.", worker
            )
