"""Azure ML's serialized `Environment`, as its `save_to_yaml` writes it, made into our terms.

Azure ML builds a container from an Environment; here the entry script runs in the Dask
workers' own Python. What carries over is what can be checked there: the packages of
`python.condaDependencies` become the config's requirements list and `environmentVariables`
join the config's `environment_variables`. The rest (the docker image, Spark, Databricks, R)
has no counterpart and is ignored, the docker section with one warning.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from prefect_parallelrun.config.conda_requirements import AzureEnvironmentError, conda_requirements

# Keys of Azure ML's serialized Environment (azureml.core.Environment._serialize_to_dict).
AZURE_ENVIRONMENT_KEYS = frozenset({
    "name", "version", "environmentVariables", "python", "docker", "spark", "databricks", "r",
    "inferencingStackVersion", "assetId",
})
# Environment.save_to_directory's layout, which older SDKs name in `environment_dir_path`.
DEFINITION_FILE_NAME = "azureml_environment.json"
CONDA_FILE_NAME = "conda_dependencies.yml"
_CONFIG_STAGE_DIR = str(Path(__file__).parent)
ENVIRONMENT_FORMS = (
    "a pip requirements list, the path of a requirements file, conda YAML or Azure ML "
    "Environment file, or an Azure ML Environment mapping"
)


class AzureEnvironmentWarning(UserWarning):
    """A part of an Azure ML Environment that has no counterpart here and is ignored."""


@dataclass(frozen=True)
class TranslatedEnvironment:
    """What a config's `environment` value stands for once Azure ML's forms are read.

    `requirements` is the config's `environment` (unchanged when it was already ours);
    `variables` are the Azure Environment's `environmentVariables`.
    """

    requirements: Any
    variables: dict[str, str] = field(default_factory=dict)


def translate_environment(value: Any) -> TranslatedEnvironment:
    """Read Azure ML's forms of `environment`; leave every other value as it is.

    An Azure Environment mapping, or the path of an Azure Environment file (YAML or JSON) or
    of an `Environment.save_to_directory` folder, becomes a pip requirements list. A relative
    path is relative to the working directory, as Azure ML's own `load_yaml` reads it. A conda
    YAML file or requirements file stays a path: the job reads it when it starts. The parts of
    an Azure Environment with no counterpart here are ignored with an `AzureEnvironmentWarning`.

    Args:
        value: A config's `environment`, as given or as read from YAML.

    Returns:
        The requirements for the config's `environment`, and the Azure Environment's variables
        (empty when `value` was not an Azure Environment).

    Raises:
        AzureEnvironmentError: An Azure Environment (mapping, file or folder) that cannot be
            read or names no usable requirements; the message names the part to fix.
    """
    if isinstance(value, Mapping):
        return _from_mapping(value, "environment")
    if isinstance(value, str) and value.strip():
        path = Path(value)
        if path.is_dir():
            return environment_from_directory(value)
        if path.suffix.lower() in (".json", ".yml", ".yaml") and path.is_file():
            return _from_file(path, value)
    return TranslatedEnvironment(value)


def environment_from_directory(folder: Any) -> TranslatedEnvironment:
    """Read an environment saved by Azure ML's `Environment.save_to_directory`.

    Args:
        folder: The folder's path (older SDKs name it in `environment_dir_path`).

    Returns:
        The environment's pip requirements and its environment variables.

    Raises:
        AzureEnvironmentError: The folder holds no `azureml_environment.json`, or its files
            cannot be read or name no usable requirements.
    """
    definition_path = Path(str(folder)) / DEFINITION_FILE_NAME
    if not isinstance(folder, str) or not definition_path.is_file():
        raise AzureEnvironmentError(
            f"environment folder {str(folder)!r} must hold {DEFINITION_FILE_NAME}, as Azure ML's "
            "Environment.save_to_directory writes it; point environment at that folder or "
            "give a requirements list instead."
        )
    definition = _read_document(definition_path)
    conda_path = definition_path.parent / CONDA_FILE_NAME
    if conda_path.is_file() and isinstance(definition, Mapping):
        python = dict(definition.get("python") or {})
        python["condaDependencies"] = _read_document(conda_path)
        definition = {**definition, "python": python}
    return _from_mapping(definition, str(definition_path))


def _from_file(path: Path, shown: str) -> TranslatedEnvironment:
    document = _read_document(path)
    if isinstance(document, Mapping) and _is_azure_environment(document):
        return _from_mapping(document, shown)
    if path.suffix.lower() == ".json" and isinstance(document, Mapping):
        # The job reads .json files as requirements files, so a conda spec in JSON is read now.
        return _from_mapping(document, shown)
    return TranslatedEnvironment(shown)


def _read_document(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise AzureEnvironmentError(
            f"environment file {str(path)!r} must be readable YAML or JSON ({error}); fix the "
            "file or give a requirements list instead."
        ) from error


def _is_azure_environment(document: Mapping[str, Any]) -> bool:
    return bool(document) and set(document) <= AZURE_ENVIRONMENT_KEYS


def _from_mapping(document: Any, where: str) -> TranslatedEnvironment:
    if not isinstance(document, Mapping):
        raise AzureEnvironmentError(f"{where} must be {ENVIRONMENT_FORMS}.")
    if "dependencies" in document:
        return TranslatedEnvironment(conda_requirements(document, where))
    if not _is_azure_environment(document):
        unknown = ", ".join(sorted(map(str, set(document) - AZURE_ENVIRONMENT_KEYS)))
        raise AzureEnvironmentError(
            f"{where} must be {ENVIRONMENT_FORMS}; it has keys an Azure ML Environment does "
            f"not have: {unknown or '(none)'}."
        )
    if set(document) <= {"name", "version"}:
        raise AzureEnvironmentError(
            f"{where} names the registered Azure ML environment {document.get('name')!r} "
            f"(version {document.get('version')!r}), which cannot be fetched here; give its "
            "packages instead, as a pip requirements list or a conda YAML file."
        )
    if document.get("name"):
        where = f"{where} (Azure ML Environment {document['name']!r})"
    _warn_about_ignored_sections(document, where)
    return TranslatedEnvironment(
        _python_requirements(document.get("python"), where) or None,
        _environment_variables(document.get("environmentVariables"), where),
    )


def _python_requirements(python: Any, where: str) -> list[str] | None:
    if python is None:
        return None
    if not isinstance(python, Mapping):
        raise AzureEnvironmentError(
            f"{where}: python must be a mapping with condaDependencies, as Azure ML writes it."
        )
    if python.get("userManagedDependencies"):
        # Azure ML then runs the interpreter as it is and installs nothing, so nothing is
        # required of the workers either.
        return None
    conda = python.get("condaDependencies")
    if conda is None and isinstance(python.get("condaDependenciesFile"), str):
        conda = _read_document(Path(python["condaDependenciesFile"]))
    if conda is None:
        return None
    if not isinstance(conda, Mapping):
        raise AzureEnvironmentError(
            f"{where}: python.condaDependencies must be a conda environment mapping with a "
            "dependencies list."
        )
    return conda_requirements(conda, f"{where}: python.condaDependencies")


def _environment_variables(variables: Any, where: str) -> dict[str, str]:
    if variables is None:
        return {}
    if not isinstance(variables, Mapping):
        raise AzureEnvironmentError(
            f"{where}: environmentVariables must map variable names to strings."
        )
    # The values may be secrets: only the names of the bad ones are shown.
    bad = [str(name) for name, value in variables.items() if not isinstance(value, str)]
    if bad or not all(isinstance(name, str) for name in variables):
        raise AzureEnvironmentError(
            f"{where}: environmentVariables must map variable names to strings; check: "
            f"{', '.join(bad) or 'the variable names'}."
        )
    return dict(variables)


def _warn_about_ignored_sections(document: Mapping[str, Any], where: str) -> None:
    docker = document.get("docker")
    if isinstance(docker, Mapping):
        image = docker.get("baseImage") or "none"
        warnings.warn(
            f"{where}: the docker section (base image {image}) is ignored: entry "
            "scripts run in the Dask workers' own Python environment, not in a container, so "
            "install what the image provided on the workers.",
            AzureEnvironmentWarning,
            stacklevel=_outside_config_stage(),
        )
    unused = [
        name for name in ("spark", "databricks", "r")
        if _holds_something(document.get(name))
    ]
    if unused:
        warnings.warn(
            f"{where}: the {', '.join(unused)} section(s) are ignored: only Python packages "
            "carry over, so install those packages on the workers yourself.",
            AzureEnvironmentWarning,
            stacklevel=_outside_config_stage(),
        )


def _outside_config_stage() -> int:
    """The stacklevel of the first caller outside the config stage: a warning then points at
    the user's `load_yaml` call, where it can be acted on, not at this module."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_CONFIG_STAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


def _holds_something(section: Any) -> bool:
    """Whether an Azure section asks for anything (Azure writes empty lists by default)."""
    if isinstance(section, Mapping):
        return any(value for value in section.values() if not isinstance(value, bool))
    return bool(section)
