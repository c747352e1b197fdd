"""`ParallelRunConfig` as YAML: its fields written, and a file (ours or Azure ML's) read back.

Azure ML's keys are translated here (`compute_target_name`, a serialized Environment), and a
file's problems are explained one sentence per key, naming the key and the form it takes,
instead of YAML's or pydantic's own dumps.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from prefect_parallelrun.config.azure_environment import (
    ENVIRONMENT_FORMS,
    environment_from_directory,
    translate_environment,
)
from prefect_parallelrun.config.dask_compute import DaskCompute
from prefect_parallelrun.config.run_fields import PARAMETER_ORDER
from prefect_parallelrun.config.sizes import ACCEPTED_FORMS

YAML_ROOT_KEY = "parallel_run_config"
# Keys that only Azure ML's save_to_yaml writes (the last three by older SDKs): accepted on
# load and translated, never written.
AZURE_ONLY_KEYS = (
    "compute_target_name", "environment_name", "environment_dir_path", "input_format",
)
# What each key takes, for the messages of a YAML file's type errors.
_FIELD_FORMS = {
    "environment": ENVIRONMENT_FORMS,
    "entry_script": "the entry script's path, as a string",
    "error_threshold": "an integer >= -1",
    "output_action": "append_row or summary_only",
    "compute_target": (
        "'local', a scheduler address such as tcp://host:8786, the name of a saved DaskCompute "
        "block, or a mapping of DaskCompute fields"
    ),
    "node_count": "an integer greater than 0",
    "process_count_per_node": "an integer greater than 0",
    "mini_batch_size": ACCEPTED_FORMS,
    "source_directory": "a folder path, as a string",
    "description": "a string",
    "logging_level": "DEBUG, INFO, WARNING, ERROR or CRITICAL",
    "run_invocation_timeout": "an integer number of seconds greater than 0",
    "run_max_try": "an integer greater than 0",
    "append_row_file_name": "a plain file name",
    "allowed_failed_count": "an integer >= -1",
    "allowed_failed_percent": "a number from 0 to 100",
    "partition_keys": "a list of strings",
    "environment_variables": "a mapping of names to strings",
    "address": "a scheduler address such as tcp://host:8786",
    "cluster_class": "a dotted class path such as dask_jobqueue.SLURMCluster",
    "cluster_kwargs": "a mapping of keyword arguments",
    "adapt_kwargs": "a mapping of keyword arguments",
}


def fields_from_yaml_text(text: str, source: str) -> dict[str, Any]:
    """Read YAML text holding a `parallel_run_config:` mapping into constructor keywords.

    Only safe YAML is read. Azure ML's keys are translated: `compute_target_name` becomes
    `compute_target`, a mapping under `compute_target` a `DaskCompute`, and a serialized
    Azure ML Environment a requirements list and environment variables.

    Args:
        text: The YAML text.
        source: Where the text came from (a path), named at the start of every message.

    Returns:
        The keywords for `ParallelRunConfig(**fields)`, not yet validated.

    Raises:
        ValueError: The text is not safe YAML, holds no `parallel_run_config:` mapping, has an
            unknown key, or a key Azure ML writes that cannot be translated.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as error:
        raise ValueError(
            f"{source} is not safe YAML: Python tags such as !!python/object are refused "
            f"({error.problem}{_yaml_place(error)})."
        ) from error
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        started = f" ({context}{_yaml_place(error, 'context_mark')})" if context else ""
        raise ValueError(
            f"{source} is not valid YAML: {problem}{_yaml_place(error)}{started}. Check the "
            f"quotes, brackets and indentation there."
        ) from error
    if not isinstance(document, dict) or not isinstance(document.get(YAML_ROOT_KEY), dict):
        raise ValueError(f"{source} must hold a top-level '{YAML_ROOT_KEY}:' mapping.")
    raw = document[YAML_ROOT_KEY]
    unknown = sorted(map(str, set(raw) - set(PARAMETER_ORDER) - set(AZURE_ONLY_KEYS)))
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) in {YAML_ROOT_KEY}: {', '.join(unknown)}. "
            f"Known keys: {', '.join(PARAMETER_ORDER)}, and Azure ML's "
            f"{', '.join(AZURE_ONLY_KEYS)}."
        )
    try:
        return _translated_fields(raw)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error


def yaml_mapping(fields: dict[str, Any], environment_variables: dict[str, str]) -> dict[str, Any]:
    """A config's fields as plain YAML-safe values, secrets in clear.

    Args:
        fields: The config's fields, in the order they are to be written.
        environment_variables: The config's environment variables in clear, written in place
            of the secret `environment_variables` when that is set.

    Returns:
        The mapping, a `DaskCompute` target as its fields with its PEM text in clear.
    """
    mapping = dict(fields)
    if isinstance(mapping.get("compute_target"), DaskCompute):
        mapping["compute_target"] = mapping["compute_target"].fields_in_clear()
    if mapping.get("environment_variables") is not None:
        mapping["environment_variables"] = environment_variables
    return mapping


def yaml_text(mapping: dict[str, Any]) -> str:
    """The YAML text of a config's mapping, under a top-level `parallel_run_config:` key.

    Args:
        mapping: The config's fields, as `yaml_mapping` makes them; their order is kept.

    Returns:
        The text, for a file that `fields_from_yaml_text` reads back.
    """
    return yaml.safe_dump({YAML_ROOT_KEY: mapping}, sort_keys=False)


def explain_validation_error(
    error: ValidationError, values: dict[str, Any], parent: str = ""
) -> str:
    """One sentence per bad key, naming it and the form it takes, instead of pydantic's dump.

    The values of `environment_variables` stay out of the sentences: they are secrets.

    Args:
        error: The error of validating `values`.
        values: The keywords that were validated.
        parent: The field holding `values`, when they are a nested block's fields.

    Returns:
        The sentences, joined by spaces.
    """
    reasons: dict[str, str] = {}
    for detail in error.errors():
        key = str(detail["loc"][0]) if detail["loc"] else ""
        # A union type reports one error per member type: the first one says enough.
        if key not in reasons:
            reasons[key] = _reason(key, parent, detail, values)
    return " ".join(reasons.values())


def _translated_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """The constructor's keywords for a YAML mapping, Azure ML's keys translated."""
    fields = {name: value for name, value in raw.items() if name not in AZURE_ONLY_KEYS}
    if "compute_target_name" in raw:
        if "compute_target" in raw:
            raise ValueError(
                "compute_target and compute_target_name name the same thing; keep one of them."
            )
        fields["compute_target"] = _compute_target_name(raw["compute_target_name"])
    if isinstance(fields.get("compute_target"), dict):
        try:
            fields["compute_target"] = DaskCompute(**fields["compute_target"])
        except ValidationError as error:
            raise ValueError(
                explain_validation_error(error, fields["compute_target"], "compute_target")
            ) from None
    environment = fields.get("environment")
    if environment is None and raw.get("environment_dir_path") is not None:
        translated = environment_from_directory(raw["environment_dir_path"])
    elif environment is None and raw.get("environment_name"):
        raise ValueError(
            f"environment_name names the registered Azure ML environment "
            f"{raw['environment_name']!r}, which cannot be fetched here; add environment: with "
            "its packages, as a pip requirements list or a conda YAML file."
        )
    else:
        translated = translate_environment(environment)
    fields["environment"] = translated.requirements
    if translated.variables:
        explicit = fields.get("environment_variables")
        # Only a mapping can be merged; anything else is left for validation to name.
        if explicit is None or isinstance(explicit, dict):
            fields["environment_variables"] = {**translated.variables, **(explicit or {})}
    return fields


def _compute_target_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            "compute_target_name must be the name of a saved DaskCompute block, or 'local'; "
            f"got {name!r}."
        )
    return name.strip()


def _reason(key: str, parent: str, detail: Any, values: dict[str, Any]) -> str:
    shown = f"{parent}.{key}" if parent and key else key or parent
    form = _FIELD_FORMS.get(key, "a valid value")
    if detail["type"] == "missing":
        return f"{shown} is missing; add it ({form})."
    if detail["type"] == "value_error":
        message = str(detail["ctx"]["error"]).rstrip(".") + "."
        if not key:
            return f"{parent}: {message}" if parent else message
        return message if message.startswith(key) else f"{shown} {message}"
    # Secrets stay out of messages: only the kind of a value is named.
    value = values.get(key)
    got = type(value).__name__ if key == "environment_variables" else repr(value)
    if len(got) > 80:
        got = f"a {type(value).__name__}"
    return f"{shown} must be {form}; got {got}."


def _yaml_place(error: yaml.YAMLError, which: str = "problem_mark") -> str:
    mark = getattr(error, which, None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
