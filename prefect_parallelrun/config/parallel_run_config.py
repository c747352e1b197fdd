"""`ParallelRunConfig`: Azure ML's run configuration, kept as a Prefect block and as YAML.

The checks of the field values are in `run_fields`; YAML is read and written in `yaml_file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import ConfigDict, Field, ValidationError, model_validator

from prefect_parallelrun.config.choices import LoggingLevel, OutputAction
from prefect_parallelrun.config.dask_compute import DaskCompute
from prefect_parallelrun.config.documentation import docs_page
from prefect_parallelrun.config.run_fields import (
    FAILURE_LIMIT,
    LOGGING_LEVEL,
    MINI_BATCH_SIZE,
    OUTPUT_ACTION,
    PARAMETER_ORDER,
    PARTITION_KEYS,
    PERCENT,
    PLAIN_FILE_NAME,
    POSITIVE_INTEGER,
    STRING_TO_STRING,
    check_partition_keys_alone,
    with_positional_arguments,
)
from prefect_parallelrun.config.yaml_file import (
    explain_validation_error,
    fields_from_yaml_text,
    yaml_mapping,
    yaml_text,
)

DEFAULT_APPEND_ROW_FILE_NAME = "parallel_run_step.txt"


class ParallelRunConfig(Block):
    """How a parallel run splits its inputs, runs the entry script and judges failures.

    The keywords, defaults and validation are those of Azure ML's `ParallelRunConfig`, so a
    config written for Azure ML constructs here unchanged. Keep it as a block with `save()`,
    or move it between machines as YAML with `save_to_yaml()` and `load_yaml()`.

    Raises:
        ValueError: A field is missing or has a bad value (a `pydantic.ValidationError`, whose
            message names the field and its rule), `partition_keys` and `mini_batch_size` are
            both set, or a field is given both by position and by keyword.

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
    error_threshold: Annotated[int, FAILURE_LIMIT] = Field(
        description="Failed items tolerated before the job aborts; -1 ignores all item failures.",
    )
    output_action: Annotated[OutputAction, OUTPUT_ACTION] = Field(
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
    node_count: Annotated[int, POSITIVE_INTEGER] = Field(
        description="Number of Dask worker nodes used by the job."
    )
    process_count_per_node: Annotated[int | None, POSITIVE_INTEGER] = Field(
        default=None,
        description=(
            "Entry-script processes run at once on each node; by default the node's CPU count, "
            "or one per GPU where GPUs are visible."
        ),
    )
    mini_batch_size: Annotated[int | str | None, MINI_BATCH_SIZE] = Field(
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
    description: str | None = Field(default=None, description="A free-text description of the job.")
    logging_level: Annotated[LoggingLevel, LOGGING_LEVEL] = Field(
        default="INFO",
        description="Log level of the job's run log and of EntryScript().logger.",
    )
    run_invocation_timeout: Annotated[int, POSITIVE_INTEGER] = Field(
        default=60,
        description="Seconds one run() call may take before its process is stopped and replaced.",
    )
    run_max_try: Annotated[int, POSITIVE_INTEGER] = Field(
        default=3, description="Attempts a mini-batch gets before it is counted as failed."
    )
    append_row_file_name: Annotated[str | None, PLAIN_FILE_NAME] = Field(
        default=None,
        description="Name of the append_row output file; parallel_run_step.txt when unset.",
    )
    allowed_failed_count: Annotated[int | None, FAILURE_LIMIT] = Field(
        default=None,
        description="Failed mini-batches tolerated before the job aborts; unset or -1 ignores.",
    )
    allowed_failed_percent: Annotated[float | None, PERCENT] = Field(
        default=None,
        description="Percentage of failed mini-batches tolerated; unset or 100 ignores.",
    )
    partition_keys: Annotated[list[str] | None, PARTITION_KEYS] = Field(
        default=None,
        description=(
            "Keys that group inputs into one mini-batch per distinct combination of values; "
            "cannot be combined with mini_batch_size."
        ),
    )
    environment_variables: Annotated[SecretDict | None, STRING_TO_STRING] = Field(
        default=None,
        description="Environment variables set in every entry-script process; kept secret.",
    )

    def __new__(cls, *args: Any, **kwargs: Any) -> ParallelRunConfig:
        return super().__new__(cls, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(**with_positional_arguments(args, kwargs))

    @model_validator(mode="after")
    def _partition_keys_exclude_mini_batch_size(self) -> ParallelRunConfig:
        check_partition_keys_alone(self.partition_keys, self.mini_batch_size)
        return self

    @property
    def resolved_append_row_file_name(self) -> str:
        """The append_row file's name, with the default filled in."""
        return self.append_row_file_name or DEFAULT_APPEND_ROW_FILE_NAME

    def secret_environment_variables(self) -> dict[str, str]:
        """The environment variables in clear, for the entry-script processes only.

        Returns:
            The names and values of `environment_variables`; empty when it is unset.
        """
        if self.environment_variables is None:
            return {}
        return dict(self.environment_variables.get_secret_value())

    def to_yaml_mapping(self) -> dict[str, Any]:
        """Every field as plain YAML-safe values, secrets in clear.

        Returns:
            The fields in the constructor's order; a `DaskCompute` target as its fields.
        """
        fields = {name: getattr(self, name) for name in PARAMETER_ORDER}
        return yaml_mapping(fields, self.secret_environment_variables())

    def save_to_yaml(self, path: str | Path) -> None:
        """Write every field under a top-level `parallel_run_config:` mapping.

        The file holds `environment_variables` in clear: keep it where you keep secrets.

        Args:
            path: The file to write; an existing one is replaced.

        Raises:
            OSError: The file cannot be written.
        """
        Path(path).write_text(yaml_text(self.to_yaml_mapping()), encoding="utf-8")

    @staticmethod
    def load_yaml(workspace: Any, path: str | Path) -> ParallelRunConfig:
        """Read a config written by `save_to_yaml`, by hand, or by Azure ML's `save_to_yaml`.

        Azure ML's files load as they are: `compute_target_name` becomes `compute_target` (the
        name of a saved `DaskCompute` block, or `local`), and a serialized Azure ML Environment
        becomes a requirements list and environment variables (see `translate_environment`).

        Args:
            workspace: Ignored; kept so that Azure ML's `load_yaml(workspace, path)` calls work.
            path: The YAML file, holding a top-level `parallel_run_config:` mapping.

        Returns:
            The configuration.

        Raises:
            OSError: The file cannot be read.
            ValueError: The file is not safe YAML, or a key is unknown or has a bad value; the
                message names the key and the form it takes.
        """
        del workspace  # There is no workspace here.
        return ParallelRunConfig.from_yaml_text(Path(path).read_text(encoding="utf-8"), str(path))

    @staticmethod
    def from_yaml_text(text: str, source: str = "<yaml>") -> ParallelRunConfig:
        """Parse YAML text holding a `parallel_run_config:` mapping (safe YAML only).

        Args:
            text: The YAML text, as `save_to_yaml` or Azure ML's `save_to_yaml` writes it.
            source: Where the text came from, named at the start of every message.

        Returns:
            The configuration.

        Raises:
            ValueError: The text is not safe YAML, or a key is unknown or has a bad value; the
                message names the key and the form it takes.
        """
        fields = fields_from_yaml_text(text, source)
        try:
            return ParallelRunConfig(**fields)
        except ValidationError as error:
            raise ValueError(f"{source}: {explain_validation_error(error, fields)}") from None
