"""The check that the workers have the job's `environment`, before the first mini-batch.

Nothing is installed here (`environment_install` installs, when the compute target asks): a
job's `environment` (a list of pip requirements, a requirements file, or a conda-style YAML
whose `dependencies:` hold a `pip:` list) is what the workers' Python must already provide.
A missing or too old package fails the job at once, naming it, instead of failing every
mini-batch with an ImportError.
"""

from __future__ import annotations

import importlib.metadata
import os
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement

Environment = None | str | os.PathLike[str] | Iterable[str] | Mapping[str, Any]


class MissingPackagesError(RuntimeError):
    """Some workers lack packages the job's environment requires.

    The message names each worker, what it lacks, and the `pip install` that fixes it.

    Args:
        missing: Each worker's address, with its problems as `missing_requirements` gives
            them; kept as `self.missing`.
    """

    def __init__(self, missing: dict[str, list[str]]):
        self.missing = missing
        where = "; ".join(f"on {worker}: {', '.join(found)}" for worker, found in missing.items())
        names = sorted({problem.split(" (")[0] for found in missing.values() for problem in found})
        super().__init__(
            f"The workers lack packages the job's environment requires ({where}). Install them "
            f"in the workers' Python environment (pip install {shlex.join(names)}), or change "
            "the config's environment."
        )


def check_environment(client: Any, environment: Environment) -> list[str]:
    """Check that every worker now connected has the job's pip requirements.

    Args:
        client: The job's `distributed.Client`.
        environment: The config's `environment`.

    Returns:
        The requirements checked, to put in `ProcessSpec.requirements`, so that workers that
        join later are checked too (their mini-batches then fail as fatal).

    Raises:
        MissingPackagesError: A worker lacks a requirement, or has too old a version.
        OSError: A file the environment names cannot be read.
        ValueError: A conda environment's `dependencies` is not a list.
    """
    requirements = read_requirements(environment)
    if not requirements:
        return requirements
    found = client.run(missing_requirements, requirements)
    missing = {worker: problems for worker, problems in found.items() if problems}
    if missing:
        raise MissingPackagesError(missing)
    return requirements


def read_requirements(environment: Environment) -> list[str]:
    """The pip requirements an `environment` names.

    Lines that are not requirements (options, URLs and paths to install from, comments) are
    skipped; `-r` includes of a requirements file are followed.

    Args:
        environment: A list of pip requirements, a requirements file, a conda-style YAML
            file or mapping (its `pip:` list), or None.

    Returns:
        The requirements, in order; empty for None.

    Raises:
        OSError: A file it names cannot be read.
        ValueError: A conda environment's `dependencies` is not a list.
    """
    if environment is None:
        return []
    if isinstance(environment, Mapping):
        return _conda_requirements(environment, "the environment")
    if isinstance(environment, (str, os.PathLike)):
        path = os.fspath(environment)
        if path.lower().endswith((".yml", ".yaml")):
            with open(path, encoding="utf-8") as conda_file:
                return _conda_requirements(yaml.safe_load(conda_file) or {}, path)
        return _requirements_file(path)
    return _requirement_lines(environment, base_dir=None)


def missing_requirements(requirements: Iterable[str]) -> list[str]:
    """On a worker: the requirements its Python lacks.

    Args:
        requirements: Pip requirements; one whose marker does not apply here is skipped.

    Returns:
        Each missing requirement followed by "(not installed)" or "(installed: <version>)".
    """
    problems = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{text} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{text} (installed: {installed})")
    return problems


def _conda_requirements(conda_env: Mapping[str, Any], source: str) -> list[str]:
    # Conda's own packages may not be Python distributions (cudatoolkit, libgcc), so only the
    # pip list is checked.
    dependencies = conda_env.get("dependencies") or []
    if not isinstance(dependencies, list):
        raise ValueError(f"{source}: 'dependencies' must be a list.")
    pip_lists = [
        entry["pip"] for entry in dependencies if isinstance(entry, dict) and "pip" in entry
    ]
    return _requirement_lines([line for pip in pip_lists for line in pip], base_dir=None)


def _requirements_file(path: str) -> list[str]:
    with open(path, encoding="utf-8") as requirements_file:
        text = requirements_file.read().replace("\\\n", "")
    return _requirement_lines(text.splitlines(), base_dir=os.path.dirname(os.path.abspath(path)))


def _requirement_lines(lines: Iterable[str], base_dir: str | None) -> list[str]:
    requirements = []
    for raw in lines:
        line = raw.split(" #")[0].strip()
        if line.startswith(("-r ", "--requirement ")) and base_dir is not None:
            included = line.split(maxsplit=1)[1].strip()
            requirements += _requirements_file(os.path.join(base_dir, included))
            continue
        if not line or line.startswith(("#", "-")):
            continue
        line = line.split(" --")[0].strip()
        try:
            Requirement(line)
        except InvalidRequirement:
            continue  # a URL or path to install from: nothing to compare with
        requirements.append(line)
    return requirements
