"""What a job's `environment` asks of each worker's Python, read and normalised.

A conda-style YAML names three kinds of need: its `pip:` list (installed where missing), the
conda packages outside it (checked only: pip cannot install them) and the `python` version
(checked only). A requirements list or file names pip requirements alone.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from prefect_parallelrun.execute.environment import Environment, read_requirements

_CONDA_NAME = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<constraint>.*)$")
# Not packages a script imports: the interpreter (checked on its own) and the installer.
_NOT_PACKAGES = frozenset({"python", "pip"})


@dataclass(frozen=True)
class EnvironmentNeeds:
    """What a job's `environment` asks of each worker's Python.

    Args:
        pip: Pip requirements: installed where missing.
        conda: Conda package specs outside the `pip:` list: checked only, pip cannot install
            them.
        python: The conda `python` spec's constraint, such as "=3.11"; None when not given.
    """

    pip: list[str] = field(default_factory=list)
    conda: list[str] = field(default_factory=list)
    python: str | None = None


def read_environment(environment: Environment) -> EnvironmentNeeds:
    """The pip requirements, conda-only packages and Python version an `environment` names.

    Args:
        environment: A list of pip requirements, a requirements file, a conda-style YAML
            file or mapping, or None.

    Returns:
        What it needs; only `pip` is set unless it is conda-style.

    Raises:
        OSError: A file it names cannot be read.
        ValueError: A conda environment's `dependencies` is not a list.
    """
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
    """On a worker: what it lacks of the needs pip cannot install.

    Args:
        needs: The job's needs; its `pip` list is not looked at.

    Returns:
        Its Python's version if the environment asks for another, and each conda-only
        package it lacks (neither a Python distribution nor in `conda-meta`); empty when
        nothing is wrong.
    """
    problems = []
    version = ".".join(map(str, sys.version_info[:3]))
    if needs.python and not _python_matches(needs.python, version):
        problems.append(f"python{needs.python} (the workers run Python {version})")
    conda_installed = _conda_installed()
    for spec in needs.conda:
        match = _CONDA_NAME.match(spec.split("::")[-1].strip())
        if match is None:
            continue  # not a package spec (read_environment keeps only those)
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
