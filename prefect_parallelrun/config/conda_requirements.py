"""A conda environment's packages as pip requirements, which the workers' Python can check.

Azure ML's Environments list their packages as a conda environment; the entry script here runs
in the Dask workers' own Python, whose installed distributions are known by their pip names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# Azure ML's own runtime, which its ParallelRunStep requires in every environment; this package
# takes its place, so asking the workers for it would fail every migrated job for nothing.
AZURE_RUNTIME_PACKAGES = frozenset({
    "azureml-core", "azureml-defaults", "azureml-dataset-runtime", "azureml-dataprep",
    "azureml-pipeline", "azureml-pipeline-core", "azureml-pipeline-steps", "azureml-sdk",
})
# The interpreter and the installer are conda entries but not packages a script imports.
_NOT_PACKAGES = frozenset({"python", "pip"})
_CONDA_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<constraint>.*)$")


class AzureEnvironmentError(ValueError):
    """An `environment` that names no usable requirements; the message says which part."""


def conda_requirements(conda: Mapping[str, Any], where: str) -> list[str]:
    """The pip requirements of a conda environment: its conda packages and its pip list.

    `python` and `pip` are skipped (the interpreter and the installer), so are Azure ML's
    runtime packages, pip options (`--extra-index-url`) and conda channels: the workers' pip
    configuration says where packages come from. A conda constraint pip cannot express leaves
    the package's name alone, so that the package is still checked.

    Args:
        conda: A conda environment mapping, as `conda env export` or Azure ML writes it.
        where: Where the mapping came from, named in error messages.

    Returns:
        The requirement lines, in the order the environment lists them.

    Raises:
        AzureEnvironmentError: `dependencies` is not a list, or an entry is neither a package
            spec nor a `pip:` list.
    """
    dependencies = conda.get("dependencies") or []
    if not isinstance(dependencies, list):
        raise AzureEnvironmentError(f"{where}: dependencies must be a list of package specs.")
    requirements: list[str] = []
    for entry in dependencies:
        if isinstance(entry, Mapping) and isinstance(entry.get("pip"), list):
            requirements += [
                str(line).strip() for line in entry["pip"]
                if not str(line).strip().startswith("-")
            ]
        elif isinstance(entry, str):
            requirements.append(_pip_requirement_for_conda(entry))
        else:
            raise AzureEnvironmentError(
                f"{where}: each dependency must be a conda package spec such as "
                f"'numpy=1.24' or a 'pip:' list; got {entry!r}."
            )
    return [line for line in requirements if line and not _is_skipped(line)]


def _pip_requirement_for_conda(spec: str) -> str:
    """`numpy=1.24` (conda: any 1.24.x) as pip's `numpy==1.24.*`; the name alone when the
    constraint has no pip equivalent, so that the package is still checked."""
    match = _CONDA_SPEC.match(spec.split("::")[-1].strip())
    if match is None:
        return ""
    name, constraint = match.group("name"), match.group("constraint").strip()
    if not constraint:
        return name
    if constraint[0] == "=" and not constraint.startswith("=="):
        version = constraint[1:].split("=")[0]
        constraint = "==" + (version if version.endswith("*") else version + ".*")
    elif constraint[0].isdigit():
        version = constraint.split()[0]
        constraint = "==" + (version if version.endswith("*") else version + ".*")
    elif constraint.startswith("=="):
        constraint = "==" + constraint[2:].split("=")[0]
    constraint = re.sub(r"(?<=\d)\*", ".*", constraint.replace(" ", ""))
    try:
        return str(Requirement(name + constraint))
    except InvalidRequirement:
        return name


def _is_skipped(line: str) -> bool:
    try:
        name = canonicalize_name(Requirement(line).name)
    except InvalidRequirement:
        return False  # a URL or path: kept, the job decides what it can check
    return name in _NOT_PACKAGES or name in AZURE_RUNTIME_PACKAGES
