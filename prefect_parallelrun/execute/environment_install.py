"""Building a job's `environment` on the workers, for a `DaskCompute(install_environment=True)`.

Opt-in: by default the workers are only checked (`environment.check_environment`). Installing,
each worker, before the first mini-batch:

- checks the interpreter against a conda-style `python=X.Y`, and the conda-only packages (not
  pip's to install) against its Python and its `conda-meta`; anything wrong fails the job at
  once, saying to use a prebuilt image or conda on the workers;
- installs the pip requirements its Python lacks with `pip install --target` into a folder of
  its own, `<packages dir>/py<X.Y>-<hash of the requirements>`, never into the workers' (or the
  flow's) environment: the local cluster's workers share the flow's virtual environment. The
  packages dir is `$PREFECT_PARALLELRUN_PACKAGES_DIR`, else `~/.cache/prefect-parallelrun/
  packages` on that worker's machine. The folder is then put on the worker's `sys.path` and on
  the `PYTHONPATH` its entry-script processes inherit, and taken off when the job ends;
- finds that folder ready when an earlier job installed the same requirements (the cache):
  nothing is installed then.

The install runs in a worker plugin registered under the job's name, so a worker that joins
later installs too, before its entry-script processes start.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml
from distributed import Worker, WorkerPlugin
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from prefect_parallelrun.execute.environment import (
    Environment,
    check_environment,
    missing_requirements,
    read_requirements,
)

PACKAGES_DIR_VARIABLE = "PREFECT_PARALLELRUN_PACKAGES_DIR"
DEFAULT_PACKAGES_DIR = os.path.join("~", ".cache", "prefect-parallelrun", "packages")
PIP_SECONDS = 600.0
FIRST_WORKER_SECONDS = 60.0
_CONDA_NAME = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<constraint>.*)$")
# Not packages a script imports: the interpreter (checked on its own) and the installer.
_NOT_PACKAGES = frozenset({"python", "pip"})
# On a worker: the jobs using each packages folder, which leaves the paths with the last one.
_FOLDER_USERS: dict[str, int] = {}

logger = logging.getLogger("prefect_parallelrun.worker")


class EnvironmentInstallError(RuntimeError):
    """The workers cannot be given the job's environment; the message says why and what to do."""


@dataclass(frozen=True)
class EnvironmentNeeds:
    """What a job's `environment` asks of each worker's Python."""

    pip: list[str] = field(default_factory=list)
    """Pip requirements: installed where missing."""
    conda: list[str] = field(default_factory=list)
    """Conda package specs outside the `pip:` list: checked only, pip cannot install them."""
    python: str | None = None
    """The conda `python` spec's constraint, such as "=3.11"; None when not given."""


@dataclass(frozen=True)
class InstallOutcome:
    """What one worker did: the folder it put on its path, what it installed, or why not."""

    folder: str | None = None
    installed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def installs_environment(compute_target: Any, load_block: Callable[[str], Any]) -> bool:
    """Whether the config's compute target asks for its `environment` to be installed.

    Only a `DaskCompute` block can ask (`install_environment=True`); "local" and scheduler
    addresses cannot, so a saved block is loaded by name to read its field.
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

    Yields the pip requirements, for `ProcessSpec.requirements`; on leaving, the installed
    packages' folder is taken off the workers' paths.

    Raises:
        MissingPackagesError: without `install`, a worker lacks a package.
        EnvironmentInstallError: with `install`, a worker has the wrong Python, lacks a
            conda-only package, or pip could not install a requirement.
    """
    needs = read_environment(environment)
    if not (needs.pip or needs.conda or needs.python):
        yield []
        return
    _wait_for_a_worker(client)
    if not install:
        yield check_environment(client, environment)
        return
    _raise_for_conda_problems(client.run(conda_problems, needs))
    if not needs.pip:
        yield []
        return
    plugin = PackagesPlugin(job_id, needs.pip, os.getpid(), socket.gethostname())
    reporter = _InstallReporter(log)
    client.subscribe_topic(plugin.name, reporter.on_event)  # workers that join later
    try:
        client.register_plugin(plugin, name=plugin.name)
        reporter.report(client.run(_worker_outcome, plugin.name))
        yield needs.pip
    finally:
        client.unsubscribe_topic(plugin.name)
        _unregister(client, plugin.name)


def _wait_for_a_worker(client: Any) -> None:
    # Nothing can run before a worker is there; waiting for one lets a missing package (or a
    # failed install) fail the job up front, not in its first mini-batch. Not for ever: an
    # adaptive cluster may start workers only once there is work; those are handled when they
    # join (the worker plugin).
    try:
        client.wait_for_workers(1, timeout=FIRST_WORKER_SECONDS)
    except TimeoutError:
        pass


def read_environment(environment: Environment) -> EnvironmentNeeds:
    """The pip requirements, conda-only packages and Python version an `environment` names."""
    conda_env: Any = None
    if isinstance(environment, Mapping):
        conda_env = environment
    elif isinstance(environment, (str, os.PathLike)):
        path = os.fspath(environment)
        if path.lower().endswith((".yml", ".yaml")):
            with open(path, encoding="utf-8") as conda_file:
                conda_env = yaml.safe_load(conda_file) or {}
    pip = read_requirements(environment)
    if not isinstance(conda_env, Mapping):
        return EnvironmentNeeds(pip=pip)
    conda, python = [], None
    for entry in conda_env.get("dependencies") or []:
        match = _CONDA_NAME.match(str(entry).split("::")[-1].strip())
        if not isinstance(entry, str) or match is None:
            continue
        name = canonicalize_name(match.group("name"))
        if name == "python":
            python = match.group("constraint").strip() or None
        elif name not in _NOT_PACKAGES:
            conda.append(entry.strip())
    return EnvironmentNeeds(pip=pip, conda=conda, python=python)


def conda_problems(needs: EnvironmentNeeds) -> list[str]:
    """On a worker: its Python's version if the environment asks for another, and the
    conda-only packages it lacks (neither a Python distribution nor in `conda-meta`)."""
    problems = []
    version = ".".join(map(str, sys.version_info[:3]))
    if needs.python and not _python_matches(needs.python, version):
        problems.append(f"python{needs.python} (the workers run Python {version})")
    conda_installed = _conda_installed()
    for spec in needs.conda:
        match = _CONDA_NAME.match(spec.split("::")[-1].strip())
        if match is None:
            continue  # not a package spec (parse_conda_yaml keeps only those)
        name = canonicalize_name(match.group("name"))
        if name not in conda_installed and not _distribution_installed(name):
            problems.append(f"{spec} (not installed)")
    return problems


def _python_matches(constraint: str, version: str) -> bool:
    # Conda's `python=3.11` (also `3.11`, `3.11.*`) means any 3.11.x; pip-style operators
    # (`>=3.9`, `==3.11.7`) mean what they say.
    if constraint.startswith("=") and not constraint.startswith("=="):
        constraint = constraint[1:]
    if constraint[:1].isdigit():
        wanted = constraint.split()[0].rstrip(".*").split(".")  # without a build string
        return version.split(".")[: len(wanted)] == wanted
    try:
        return SpecifierSet(constraint.replace(" ", "")).contains(version)
    except InvalidSpecifier:
        return True  # a conda build string or range pip cannot read: not ours to refuse


def _conda_installed() -> set[str]:
    # A conda environment lists its packages as conda-meta/<name>-<version>-<build>.json.
    try:
        files = os.listdir(os.path.join(sys.prefix, "conda-meta"))
    except OSError:
        return set()
    return {canonicalize_name(name.rsplit("-", 2)[0]) for name in files if name.endswith(".json")}


def _distribution_installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


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


class PackagesPlugin(WorkerPlugin):
    """Installs a job's missing pip requirements on each worker, into a cached folder of its own.

    `setup` is synchronous on purpose: a worker that joins later sets its plugins up in the
    order they were registered, and the job's entry-script processes (the next plugin) must
    find the packages installed when they start.
    """

    def __init__(self, job_id: str, requirements: list[str], flow_pid: int, flow_host: str):
        self.name = f"parallel-run-packages-{job_id}"
        self.requirements = requirements
        self.flow_pid = flow_pid
        self.flow_host = flow_host
        self.outcome = InstallOutcome()

    def setup(self, worker: Worker) -> None:
        if os.getpid() == self.flow_pid and socket.gethostname() == self.flow_host:
            self.outcome = InstallOutcome(error=(
                "the workers run inside the flow's own process, where installing would change "
                "the flow's environment; start the cluster with worker processes "
                "(processes=True)"
            ))
            return
        self.outcome = install_requirements(self.requirements)
        if self.outcome.error is not None:
            logger.warning("Could not install the job's packages: %s", self.outcome.error)
        if self.outcome.folder is not None:
            _add_to_paths(self.outcome.folder)
        worker.log_event(self.name, {"worker": worker.address, **asdict(self.outcome)})

    def teardown(self, worker: Worker) -> None:
        if self.outcome.folder is not None:
            _remove_from_paths(self.outcome.folder)


def install_requirements(requirements: list[str]) -> InstallOutcome:
    """On a worker: make `requirements` importable, installing what its Python lacks into
    `<packages dir>/py<X.Y>-<hash>`; an earlier install of the same requirements is reused."""
    folder = packages_folder(requirements)
    missing = _missing_with(folder, requirements)
    if not missing:
        return InstallOutcome(folder=folder if os.path.isdir(folder) else None)
    stale = os.path.isdir(folder)  # an earlier install that no longer suffices
    started = time.monotonic()
    staging = tempfile.mkdtemp(prefix=".installing-", dir=os.path.dirname(folder))
    try:
        error = _pip_install(staging, [problem.split(" (")[0] for problem in missing])
        if error is not None:
            return InstallOutcome(error=error)
        installed = _distributions_in(staging)
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(staging, folder)
        except OSError:
            pass  # another worker on this machine installed the same requirements meanwhile
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    still_missing = _missing_with(folder, requirements)
    if still_missing:
        return InstallOutcome(error=f"still missing after pip install: {', '.join(still_missing)}")
    return InstallOutcome(folder, installed, time.monotonic() - started)


def packages_folder(requirements: list[str]) -> str:
    """Where a worker installs `requirements`: one folder per Python version and requirements."""
    root = os.path.expanduser(os.environ.get(PACKAGES_DIR_VARIABLE) or DEFAULT_PACKAGES_DIR)
    key = "\n".join(sorted(requirements)).encode()
    python = f"py{sys.version_info.major}.{sys.version_info.minor}"
    os.makedirs(root, exist_ok=True)
    return os.path.join(root, f"{python}-{hashlib.sha256(key).hexdigest()[:16]}")


def _missing_with(folder: str, requirements: list[str]) -> list[str]:
    if not os.path.isdir(folder):
        return missing_requirements(requirements)
    if folder in sys.path:  # put there by another job's plugin on this worker
        return missing_requirements(requirements)
    # First, as on the entry-script processes' PYTHONPATH: importlib.metadata reads sys.path.
    sys.path.insert(0, folder)
    try:
        return missing_requirements(requirements)
    finally:
        sys.path.remove(folder)


def _pip_install(target: str, requirements: list[str]) -> str | None:
    """pip's reason in one line, or None when it installed `requirements` into `target`."""
    with tempfile.TemporaryDirectory(prefix="parallel-run-pip-") as lists:
        requirements_file = os.path.join(lists, "requirements.txt")
        constraints_file = os.path.join(lists, "constraints.txt")
        with open(requirements_file, "w", encoding="utf-8") as file:
            file.write("\n".join(requirements) + "\n")
        with open(constraints_file, "w", encoding="utf-8") as file:
            file.write("\n".join(_installed_pins(requirements)) + "\n")
        # `--target` installs dependencies too, even those the worker has; pinning them to the
        # worker's versions keeps the copies in the folder identical to what they shadow.
        command = [
            sys.executable, "-m", "pip", "install", "--target", target, "--no-input",
            "--disable-pip-version-check", "--no-warn-script-location", "--quiet",
            "--retries", "2", "-r", requirements_file, "-c", constraints_file,
        ]
        try:
            pip = subprocess.run(
                command, capture_output=True, text=True, timeout=PIP_SECONDS,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return f"pip install did not finish in {PIP_SECONDS:.0f} s"
    if pip.returncode == 0:
        return None
    return _one_line_reason(pip.stderr or pip.stdout, pip.returncode)


def _installed_pins(requirements: list[str]) -> list[str]:
    wanted = {canonicalize_name(Requirement(text).name) for text in requirements}
    pins: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name and canonicalize_name(name) not in wanted:
            pins.setdefault(canonicalize_name(name), f"{name}=={distribution.version}")
    return sorted(pins.values())


def _one_line_reason(output: str, returncode: int) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    if errors:
        return errors[-1]
    return lines[-1] if lines else f"pip exited with code {returncode}"


def _distributions_in(folder: str) -> list[str]:
    return sorted(
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in importlib.metadata.distributions(path=[folder])
    )


def _add_to_paths(folder: str) -> None:
    _FOLDER_USERS[folder] = _FOLDER_USERS.get(folder, 0) + 1
    if folder not in sys.path:
        sys.path.insert(0, folder)
    entries = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    if folder not in entries:
        os.environ["PYTHONPATH"] = os.pathsep.join([folder, *entries])


def _remove_from_paths(folder: str) -> None:
    _FOLDER_USERS[folder] = _FOLDER_USERS.get(folder, 1) - 1
    if _FOLDER_USERS[folder] > 0:
        return  # another job on this worker still runs with these packages
    del _FOLDER_USERS[folder]
    if folder in sys.path:
        sys.path.remove(folder)
    entries = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    if folder in entries:
        entries.remove(folder)
        if entries:
            os.environ["PYTHONPATH"] = os.pathsep.join(entries)
        else:
            os.environ.pop("PYTHONPATH", None)


def _worker_outcome(plugin_name: str, dask_worker: Worker) -> InstallOutcome:
    outcome: InstallOutcome = dask_worker.plugins[plugin_name].outcome  # type: ignore[attr-defined]
    return outcome


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


def _unregister(client: Any, name: str) -> None:
    try:
        client.unregister_worker_plugin(name)
    except ValueError as exc:  # already gone with its workers
        if "does not exist" not in str(exc):
            raise
