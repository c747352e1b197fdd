"""`ParallelRunConfig`: Azure ML's run configuration, kept as a Prefect block and as YAML."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from prefect_parallelrun.config.azure_environment import (
    ENVIRONMENT_FORMS,
    environment_from_directory,
    translate_environment,
)
from prefect_parallelrun.config.choices import (
    LOGGING_LEVELS,
    OUTPUT_ACTIONS,
    LoggingLevel,
    OutputAction,
)
from prefect_parallelrun.config.dask_compute import DaskCompute
from prefect_parallelrun.config.documentation import docs_page
from prefect_parallelrun.config.sizes import ACCEPTED_FORMS, parse_mini_batch_size

# The seed API's constructor order, so that positional calls written for Azure ML keep working.
PARAMETER_ORDER = (
    "environment",
    "entry_script",
    "error_threshold",
    "output_action",
    "compute_target",
    "node_count",
    "process_count_per_node",
    "mini_batch_size",
    "source_directory",
    "description",
    "logging_level",
    "run_invocation_timeout",
    "run_max_try",
    "append_row_file_name",
    "allowed_failed_count",
    "allowed_failed_percent",
    "partition_keys",
    "environment_variables",
)
YAML_ROOT_KEY = "parallel_run_config"
# Keys that only Azure ML's save_to_yaml writes (the last three by older SDKs): accepted on
# load and translated, never written.
AZURE_ONLY_KEYS = (
    "compute_target_name", "environment_name", "environment_dir_path", "input_format",
)
DEFAULT_APPEND_ROW_FILE_NAME = "parallel_run_step.txt"
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
_FORBIDDEN_FILE_NAME_CHARACTERS = re.compile(r'[/\\~"#%&*:<>?{|}]')


class ParallelRunConfig(Block):
    """How a parallel run splits its inputs, runs the entry script and judges failures.

    The keywords, defaults and validation are those of Azure ML's `ParallelRunConfig`, so a
    config written for Azure ML constructs here unchanged. Keep it as a block with `save()`,
    or move it between machines as YAML with `save_to_yaml()` and `load_yaml()`.

    Example:
        Load a saved configuration and run a step with it:
        ```python
        from prefect_parallelrun import ParallelRunConfig, ParallelRunStep, FileDataset

        config = ParallelRunConfig.load("BLOCK_NAME")
        step = ParallelRunStep(
            name="score-images",
            parallel_run_config=config,
            inputs=[FileDataset.from_files("images/").as_named_input("images")],
            output="scores/",
        )
        result = step.run()
        ```
    """

    # Values stay out of validation errors: environment_variables holds secrets.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    _block_type_name = "Parallel Run Config"
    _block_type_slug = "parallel-run-config"
    _logo_url = None  # see config/documentation.py
    _documentation_url = docs_page("reference/config")  # type: ignore[assignment]  # str is accepted

    environment: str | list[str] | None = Field(
        default=None,
        description=(
            "Python packages the workers must have: a pip requirements list, a requirements "
            "file or a conda-style YAML file; empty means the workers' current environment."
        ),
    )
    entry_script: str = Field(
        description="The user script with run(mini_batch) and optional init() and shutdown().",
    )
    error_threshold: int = Field(
        description="Failed items tolerated before the job aborts; -1 ignores all item failures.",
    )
    output_action: OutputAction = Field(
        description=(
            "append_row collects every result row in one file; summary_only only counts them."
        ),
    )
    compute_target: str | DaskCompute = Field(
        description=(
            'Where the job runs: "local", a scheduler address such as tcp://host:8786, '
            "a DaskCompute block, the name of a saved one, or \"task_runner\" (the cluster of "
            "the calling flow's DaskTaskRunner)."
        ),
    )
    node_count: int = Field(description="Number of Dask worker nodes used by the job.")
    process_count_per_node: int | None = Field(
        default=None,
        description=(
            "Entry-script processes run at once on each node; by default the node's CPU count, "
            "or one per GPU where GPUs are visible."
        ),
    )
    mini_batch_size: int | str | None = Field(
        default=None,
        description=(
            'Files per mini-batch for file inputs, approximate bytes (such as "8 MB") for '
            "tabular inputs; by default 10 files or 1 MB."
        ),
    )
    source_directory: str | None = Field(
        default=None,
        description="Folder holding the entry script and the modules it imports.",
    )
    description: str | None = Field(
        default=None, description="A free-text description of the job."
    )
    logging_level: LoggingLevel = Field(
        default="INFO",
        description="Log level of the job's run log and of EntryScript().logger.",
    )
    run_invocation_timeout: int = Field(
        default=60,
        description="Seconds one run() call may take before its process is stopped and replaced.",
    )
    run_max_try: int = Field(
        default=3, description="Attempts a mini-batch gets before it is counted as failed."
    )
    append_row_file_name: str | None = Field(
        default=None,
        description="Name of the append_row output file; parallel_run_step.txt when unset.",
    )
    allowed_failed_count: int | None = Field(
        default=None,
        description="Failed mini-batches tolerated before the job aborts; unset or -1 ignores.",
    )
    allowed_failed_percent: float | None = Field(
        default=None,
        description="Percentage of failed mini-batches tolerated; unset or 100 ignores.",
    )
    partition_keys: list[str] | None = Field(
        default=None,
        description=(
            "Keys that group inputs into one mini-batch per distinct combination of values; "
            "cannot be combined with mini_batch_size."
        ),
    )
    environment_variables: SecretDict | None = Field(
        default=None,
        description="Environment variables set in every entry-script process; kept secret.",
    )

    def __new__(cls, *args: Any, **kwargs: Any) -> ParallelRunConfig:
        return super().__new__(cls, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(PARAMETER_ORDER):
            raise ValueError(
                f"ParallelRunConfig takes at most {len(PARAMETER_ORDER)} positional arguments."
            )
        for name, value in zip(PARAMETER_ORDER[: len(args)], args, strict=True):
            if name in kwargs:
                raise ValueError(f"ParallelRunConfig got two values for '{name}'.")
            kwargs[name] = value
        super().__init__(**kwargs)

    @field_validator("output_action", mode="before")
    @classmethod
    def _known_output_action(cls, value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in OUTPUT_ACTIONS:
            raise ValueError(f"output_action must be one of {OUTPUT_ACTIONS}; got {value!r}.")
        return value.lower()

    @field_validator("logging_level", mode="before")
    @classmethod
    def _known_logging_level(cls, value: Any) -> str:
        if not isinstance(value, str) or value.upper() not in LOGGING_LEVELS:
            raise ValueError(f"logging_level must be one of {LOGGING_LEVELS}; got {value!r}.")
        return value.upper()

    @field_validator("error_threshold", "allowed_failed_count", mode="before")
    @classmethod
    def _threshold_at_least_minus_one(cls, value: Any) -> Any:
        if value is not None and (not _is_int(value) or value < -1):
            raise ValueError(f"must be an integer >= -1 (-1 ignores failures); got {value!r}.")
        return value

    @field_validator("allowed_failed_percent", mode="before")
    @classmethod
    def _percent_in_range(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            raise ValueError(f"must be a number from 0 to 100 (100 ignores); got {value!r}.")
        return value

    @field_validator(
        "node_count", "process_count_per_node", "run_invocation_timeout", "run_max_try",
        mode="before",
    )
    @classmethod
    def _positive_integer(cls, value: Any) -> Any:
        if value is not None and (not _is_int(value) or value <= 0):
            raise ValueError(f"must be an integer greater than 0; got {value!r}.")
        return value

    @field_validator("mini_batch_size", mode="before")
    @classmethod
    def _parsable_mini_batch_size(cls, value: Any) -> Any:
        if value is not None:
            parse_mini_batch_size(value)
        return value

    @field_validator("partition_keys", mode="before")
    @classmethod
    def _partition_keys_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f'partition_keys must be a list of strings or a JSON list like ["user"]; '
                    f"got {value!r}."
                ) from error
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(key, str) for key in value)
        ):
            raise ValueError(f"partition_keys must be a list of strings; got {value!r}.")
        return value

    @field_validator("append_row_file_name", mode="before")
    @classmethod
    def _plain_file_name(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or value in (".", ".."):
            raise ValueError(f"append_row_file_name must be a plain file name; got {value!r}.")
        if _FORBIDDEN_FILE_NAME_CHARACTERS.search(value):
            raise ValueError(
                f"append_row_file_name must be a plain file name without path separators or "
                f'any of ~"#%&*:<>?\\{{|}}; got {value!r}.'
            )
        return value

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _string_to_string(cls, value: Any) -> Any:
        if value is None or isinstance(value, SecretDict):
            return value
        if not isinstance(value, dict) or not all(
            isinstance(key, str) and isinstance(item, str) for key, item in value.items()
        ):
            # The values are secrets: name the offending keys only.
            raise ValueError(
                "environment_variables must map strings to strings; check the values of: "
                + ", ".join(
                    str(key) for key, item in (value.items() if isinstance(value, dict) else [])
                    if not isinstance(item, str)
                )
            )
        return value

    @model_validator(mode="after")
    def _partition_keys_exclude_mini_batch_size(self) -> ParallelRunConfig:
        if self.partition_keys and self.mini_batch_size is not None:
            raise ValueError(
                "partition_keys and mini_batch_size cannot be used together: with partition "
                "keys each mini-batch holds one combination of key values. Remove one of them."
            )
        return self

    @property
    def resolved_append_row_file_name(self) -> str:
        """The append_row file's name, with the default filled in."""
        return self.append_row_file_name or DEFAULT_APPEND_ROW_FILE_NAME

    def secret_environment_variables(self) -> dict[str, str]:
        """The environment variables in clear, for the entry-script processes only."""
        if self.environment_variables is None:
            return {}
        return dict(self.environment_variables.get_secret_value())

    def to_yaml_mapping(self) -> dict[str, Any]:
        """Every field as plain YAML-safe values, secrets in clear."""
        mapping: dict[str, Any] = {}
        for name in PARAMETER_ORDER:
            value = getattr(self, name)
            if isinstance(value, DaskCompute):
                value = value.fields_in_clear()
            elif name == "environment_variables" and value is not None:
                value = self.secret_environment_variables()
            mapping[name] = value
        return mapping

    def save_to_yaml(self, path: str | Path) -> None:
        """Write every field under a top-level `parallel_run_config:` mapping.

        The file holds `environment_variables` in clear: keep it where you keep secrets.
        """
        document = {YAML_ROOT_KEY: self.to_yaml_mapping()}
        Path(path).write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    @staticmethod
    def load_yaml(workspace: Any, path: str | Path) -> ParallelRunConfig:
        """Read a config written by `save_to_yaml`, by hand, or by Azure ML's `save_to_yaml`.

        Azure ML's files load as they are: `compute_target_name` becomes `compute_target` (the
        name of a saved `DaskCompute` block, or `local`), and a serialized Azure ML Environment
        becomes a requirements list and environment variables (see `translate_environment`).

        Args:
            workspace: Ignored; kept so that Azure ML's `load_yaml(workspace, path)` calls work.
            path: The YAML file, holding a top-level `parallel_run_config:` mapping.

        Raises:
            ValueError: The file is not safe YAML, or a key is unknown or has a bad value; the
                message names the key and the form it takes.
        """
        del workspace  # There is no workspace here.
        return ParallelRunConfig.from_yaml_text(Path(path).read_text(encoding="utf-8"), str(path))

    @staticmethod
    def from_yaml_text(text: str, source: str = "<yaml>") -> ParallelRunConfig:
        """Parse YAML text holding a `parallel_run_config:` mapping (safe YAML only)."""
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
            fields = _fields_from_yaml(raw)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from error
        try:
            return ParallelRunConfig(**fields)
        except ValidationError as error:
            raise ValueError(f"{source}: {_explain(error, fields)}") from None


def _fields_from_yaml(raw: dict[str, Any]) -> dict[str, Any]:
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
            raise ValueError(_explain(error, fields["compute_target"], "compute_target")) from None
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


def _explain(error: ValidationError, values: dict[str, Any], parent: str = "") -> str:
    """One sentence per bad key, naming it and its form, instead of pydantic's dump."""
    reasons: dict[str, str] = {}
    for detail in error.errors():
        key = str(detail["loc"][0]) if detail["loc"] else ""
        # A union type reports one error per member type: the first one says enough.
        if key not in reasons:
            reasons[key] = _reason(key, parent, detail, values)
    return " ".join(reasons.values())


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _yaml_place(error: yaml.YAMLError, which: str = "problem_mark") -> str:
    mark = getattr(error, which, None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
