"""On a worker: pip-installing a job's missing requirements into a cached folder of its own.

The folder is `<packages dir>/py<X.Y>-<hash of the requirements>`, never the worker's (or the
flow's) environment: the local cluster's workers share the flow's virtual environment. An
earlier install of the same requirements is found there and reused (the cache).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from prefect_parallelrun.execute.environment import missing_requirements


@dataclass(frozen=True)
class InstallOutcome:
    """What one worker did: the folder it put on its path, what it installed, or why not.

    Args:
        folder: The packages folder the worker's processes import from; None when its own
            Python has everything, or the install failed.
        installed: The distributions pip installed, as name==version.
        seconds: How long the install took.
        error: Why the install failed, in one line; None when it did not.
    """

    folder: str | None = None
    installed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def install_requirements(
    requirements: list[str], packages_dir: str, pip_timeout_seconds: float
) -> InstallOutcome:
    """On a worker: make `requirements` importable, installing what its Python lacks.

    What is missing is pip-installed into a staging folder, then renamed into
    `packages_folder(requirements, packages_dir)`; an earlier install of the same
    requirements is reused.

    Args:
        requirements: The job's pip requirements.
        packages_dir: The folder that holds every packages folder (`~` is expanded).
        pip_timeout_seconds: How long pip may take.

    Returns:
        What was done; a failure is its `error`, never an exception.

    Raises:
        OSError: The packages dir cannot be created.
    """
    folder = packages_folder(requirements, packages_dir)
    missing = _missing_with(folder, requirements)
    if not missing:
        return InstallOutcome(folder=folder if os.path.isdir(folder) else None)
    stale = os.path.isdir(folder)  # an earlier install that no longer suffices
    started = time.monotonic()
    staging = tempfile.mkdtemp(prefix=".installing-", dir=os.path.dirname(folder))
    try:
        error = _pip_install(
            staging, [problem.split(" (")[0] for problem in missing], pip_timeout_seconds
        )
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


def packages_folder(requirements: list[str], packages_dir: str) -> str:
    """Where a worker installs `requirements`: one folder per Python version and requirements.

    Args:
        requirements: The job's pip requirements (their order does not matter).
        packages_dir: The folder that holds every packages folder; created if missing.

    Returns:
        The folder's path (it may not exist yet).

    Raises:
        OSError: `packages_dir` cannot be created.
    """
    root = os.path.expanduser(packages_dir)
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


def _pip_install(target: str, requirements: list[str], timeout: float) -> str | None:
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
                command, capture_output=True, text=True, timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return f"pip install did not finish in {timeout:.0f} s"
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
