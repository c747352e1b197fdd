"""ParallelRunConfig accepts what Azure ML accepts and rejects the rest, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from prefect_parallelrun import DaskCompute, ParallelRunConfig
from prefect_parallelrun.config import parse_mini_batch_size

REQUIRED: dict[str, Any] = dict(
    entry_script="score.py",
    error_threshold=10,
    output_action="append_row",
    compute_target="local",
    node_count=1,
)


def make(**overrides: Any) -> ParallelRunConfig:
    return ParallelRunConfig(**{**REQUIRED, **overrides})


def test_the_seed_example_call_constructs_with_azure_defaults():
    config = ParallelRunConfig(
        source_directory="scripts",
        entry_script="batch_scoring.py",
        mini_batch_size="5",
        error_threshold=10,
        output_action="append_row",
        environment=None,
        compute_target="local",
        node_count=2,
    )
    assert config.process_count_per_node is None
    assert config.logging_level == "INFO"
    assert config.run_invocation_timeout == 60
    assert config.run_max_try == 3
    assert config.append_row_file_name is None
    assert config.resolved_append_row_file_name == "parallel_run_step.txt"
    assert config.allowed_failed_count is None
    assert config.allowed_failed_percent is None
    assert config.partition_keys is None
    assert config.environment_variables is None


def test_positional_arguments_follow_the_seed_order():
    config = ParallelRunConfig(None, "score.py", 5, "summary_only", "local", 3, 2, "7")
    assert (config.entry_script, config.error_threshold, config.output_action) == (
        "score.py", 5, "summary_only",
    )
    assert (config.node_count, config.process_count_per_node, config.mini_batch_size) == (3, 2, "7")


def test_a_value_given_positionally_and_by_keyword_is_an_error():
    with pytest.raises(ValueError, match="two values for 'entry_script'"):
        ParallelRunConfig(None, "a.py", entry_script="b.py")


@pytest.mark.parametrize("value", ["APPEND_ROW", "Summary_Only"])
def test_output_action_is_case_insensitive(value: str):
    assert make(output_action=value).output_action == value.lower()


def test_unknown_output_action_names_the_field():
    with pytest.raises(ValueError, match="output_action"):
        make(output_action="append_rows")


@pytest.mark.parametrize("field", ["error_threshold", "allowed_failed_count"])
@pytest.mark.parametrize("value", [-1, 0, 7])
def test_thresholds_accept_minus_one_and_above(field: str, value: int):
    assert getattr(make(**{field: value}), field) == value


@pytest.mark.parametrize("field", ["error_threshold", "allowed_failed_count"])
@pytest.mark.parametrize("value", [-2, 1.5, "3", True])
def test_thresholds_reject_other_values(field: str, value: Any):
    with pytest.raises(ValueError, match=field):
        make(**{field: value})


@pytest.mark.parametrize("value", [0, 0.5, 50, 100])
def test_allowed_failed_percent_accepts_0_to_100(value: float):
    assert make(allowed_failed_percent=value).allowed_failed_percent == value


@pytest.mark.parametrize("value", [-0.1, 100.5, "10", True])
def test_allowed_failed_percent_rejects_values_outside_0_to_100(value: Any):
    with pytest.raises(ValueError, match="allowed_failed_percent"):
        make(allowed_failed_percent=value)


@pytest.mark.parametrize(
    "field", ["node_count", "process_count_per_node", "run_invocation_timeout", "run_max_try"]
)
@pytest.mark.parametrize("value", [0, -1, 2.5, "4"])
def test_counts_and_timeouts_must_be_positive_integers(field: str, value: Any):
    with pytest.raises(ValueError, match=field):
        make(**{field: value})


def test_process_count_per_node_may_be_given():
    assert make(process_count_per_node=4).process_count_per_node == 4


@pytest.mark.parametrize("level", ["DEBUG", "info", "Warning", "ERROR", "critical"])
def test_logging_level_accepts_standard_levels(level: str):
    assert make(logging_level=level).logging_level == level.upper()


def test_unknown_logging_level_names_the_field():
    with pytest.raises(ValueError, match="logging_level"):
        make(logging_level="VERBOSE")


@pytest.mark.parametrize(
    ("raw", "value", "has_unit"),
    [
        (10, 10, False),
        ("1024", 1024, False),
        ("1024 KB", 1024 * 1024, True),
        ("10MB", 10 * 1024**2, True),
        ("1 GB", 1024**3, True),
        ("5 kb", 5 * 1024, True),
        (" 3  mb ", 3 * 1024**2, True),
    ],
)
def test_mini_batch_size_parses_counts_and_binary_units(raw: Any, value: int, has_unit: bool):
    parsed = parse_mini_batch_size(raw)
    assert (parsed.value, parsed.has_unit) == (value, has_unit)
    assert make(mini_batch_size=raw).mini_batch_size == raw


@pytest.mark.parametrize("raw", ["10 TB", "ten", "1.5 MB", "", "0", 0, -5, True, 2.0, "MB"])
def test_bad_mini_batch_size_shows_the_accepted_forms(raw: Any):
    with pytest.raises(ValueError, match="mini_batch_size") as error:
        make(mini_batch_size=raw)
    assert '"10MB"' in str(error.value) or "greater than 0" in str(error.value)


def test_partition_keys_accept_a_list_or_a_json_list():
    assert make(partition_keys=["user", "date"]).partition_keys == ["user", "date"]
    assert make(partition_keys='["user"]').partition_keys == ["user"]


@pytest.mark.parametrize("value", ["user", "[1, 2]", ["user", 3], '{"a": 1}'])
def test_partition_keys_must_be_strings(value: Any):
    with pytest.raises(ValueError, match="partition_keys"):
        make(partition_keys=value)


def test_partition_keys_with_mini_batch_size_is_an_error():
    with pytest.raises(ValueError, match="partition_keys and mini_batch_size"):
        make(partition_keys=["user"], mini_batch_size=5)


def test_append_row_file_name_accepts_a_plain_name():
    assert make(append_row_file_name="scores.csv").resolved_append_row_file_name == "scores.csv"


@pytest.mark.parametrize(
    "name", ["out/scores.txt", "..\\x", "~home", "a:b", "a*b", "a?b", "a|b", "a{b", "", ".."]
)
def test_append_row_file_name_rejects_paths_and_reserved_characters(name: str):
    with pytest.raises(ValueError, match="append_row_file_name"):
        make(append_row_file_name=name)


def test_environment_variables_are_secret_and_readable_by_the_runtime():
    config = make(environment_variables={"API_TOKEN": "s3cr3t"})
    assert "s3cr3t" not in repr(config)
    assert "s3cr3t" not in config.model_dump_json()
    assert config.secret_environment_variables() == {"API_TOKEN": "s3cr3t"}


def test_environment_variables_must_be_strings_and_errors_hide_the_values():
    with pytest.raises(ValueError, match="environment_variables") as error:
        make(environment_variables={"API_TOKEN": 987654321})
    assert "987654321" not in str(error.value)
    assert "API_TOKEN" in str(error.value)


def test_environment_accepts_none_a_requirements_list_or_a_file():
    assert make().environment is None
    assert make(environment=["pandas>=2"]).environment == ["pandas>=2"]
    assert make(environment="requirements.txt").environment == "requirements.txt"


def test_unknown_keyword_is_rejected_by_name():
    with pytest.raises(ValueError, match="mini_batchsize"):
        make(mini_batchsize=5)


@pytest.mark.parametrize("field", sorted(REQUIRED))
def test_required_fields_are_named_when_missing(field: str):
    arguments = {key: value for key, value in REQUIRED.items() if key != field}
    with pytest.raises(ValueError, match=field):
        ParallelRunConfig(**arguments)


def test_compute_target_may_be_a_dask_compute_block():
    compute = DaskCompute(address="tcp://127.0.0.1:8786")
    assert make(compute_target=compute).compute_target == compute


def test_dask_compute_rejects_address_with_cluster_class():
    with pytest.raises(ValueError, match="'address'.*'cluster_class'"):
        DaskCompute(address="tcp://127.0.0.1:8786", cluster_class="distributed.LocalCluster")


def test_dask_compute_rejects_cluster_kwargs_with_address():
    with pytest.raises(ValueError, match="cluster_kwargs"):
        DaskCompute(address="tcp://127.0.0.1:8786", cluster_kwargs={"n_workers": 2})
