"""save_to_yaml / load_yaml keep every field, across processes, and load safe YAML only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prefect_parallelrun import DaskCompute, ParallelRunConfig
from prefect_parallelrun.config.parallel_run_config import PARAMETER_ORDER

EVERY_FIELD_SET = dict(
    environment=["pandas>=2", "pyarrow"],
    entry_script="score.py",
    error_threshold=-1,
    output_action="summary_only",
    compute_target=DaskCompute(cluster_class="distributed.LocalCluster",
                               cluster_kwargs={"n_workers": 2}, adapt_kwargs={"maximum": 4}),
    node_count=3,
    process_count_per_node=2,
    mini_batch_size=None,
    source_directory="scripts",
    description="nightly scoring",
    logging_level="DEBUG",
    run_invocation_timeout=30,
    run_max_try=5,
    append_row_file_name="out.txt",
    allowed_failed_count=4,
    allowed_failed_percent=12.5,
    partition_keys=["user", "date"],
    environment_variables={"API_TOKEN": "s3cr3t"},
)


def test_every_field_is_written_under_parallel_run_config(tmp_path: Path):
    path = tmp_path / "config.yml"
    ParallelRunConfig(**EVERY_FIELD_SET).save_to_yaml(path)
    document = yaml.safe_load(path.read_text())
    assert list(document) == ["parallel_run_config"]
    assert list(document["parallel_run_config"]) == list(PARAMETER_ORDER)
    assert document["parallel_run_config"]["environment_variables"] == {"API_TOKEN": "s3cr3t"}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"partition_keys": None, "mini_batch_size": "8 MB"},
        {"partition_keys": None, "mini_batch_size": 25, "compute_target": "tcp://127.0.0.1:1"},
        {"environment": "requirements.txt", "environment_variables": None},
        {"allowed_failed_percent": 100, "allowed_failed_count": -1},
    ],
)
def test_round_trip_gives_an_equal_config(tmp_path: Path, overrides: dict):
    config = ParallelRunConfig(**{**EVERY_FIELD_SET, **overrides})
    config.save_to_yaml(tmp_path / "config.yml")
    loaded = ParallelRunConfig.load_yaml(None, tmp_path / "config.yml")
    assert loaded == config
    for name in PARAMETER_ORDER:
        assert getattr(loaded, name) == getattr(config, name), name


def test_yaml_saved_by_one_process_loads_equal_in_another(tmp_path: Path):
    config = ParallelRunConfig(**EVERY_FIELD_SET)
    config.save_to_yaml(tmp_path / "config.yml")
    script = (
        "import sys\n"
        "from prefect_parallelrun import ParallelRunConfig\n"
        "config = ParallelRunConfig.load_yaml(None, sys.argv[1])\n"
        "config.save_to_yaml(sys.argv[2])\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, tmp_path / "config.yml", tmp_path / "again.yml"],
        check=True,
    )
    assert ParallelRunConfig.load_yaml(None, tmp_path / "again.yml") == config
    assert (tmp_path / "again.yml").read_text() == (tmp_path / "config.yml").read_text()


def test_python_tags_are_refused(tmp_path: Path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yml"
    path.write_text(
        "parallel_run_config:\n"
        f"  entry_script: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    with pytest.raises(ValueError, match="safe YAML"):
        ParallelRunConfig.load_yaml(None, path)
    assert not marker.exists()


def test_unknown_keys_are_named(tmp_path: Path):
    path = tmp_path / "config.yml"
    path.write_text(
        "parallel_run_config:\n  entry_script: a.py\n  error_threshold: 1\n"
        "  output_action: append_row\n  compute_target: local\n  node_count: 1\n"
        "  mini_batchsize: 3\n"
    )
    with pytest.raises(ValueError, match="unknown key.*mini_batchsize"):
        ParallelRunConfig.load_yaml(None, path)


def test_bad_values_name_the_field(tmp_path: Path):
    path = tmp_path / "config.yml"
    path.write_text(
        "parallel_run_config:\n  entry_script: a.py\n  error_threshold: 1\n"
        "  output_action: append_row\n  compute_target: local\n  node_count: 0\n"
    )
    with pytest.raises(ValueError, match="node_count"):
        ParallelRunConfig.load_yaml(None, path)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "other: {}\n", "parallel_run_config: 3\n"])
def test_a_file_without_the_top_level_mapping_is_refused(tmp_path: Path, text: str):
    path = tmp_path / "config.yml"
    path.write_text(text)
    with pytest.raises(ValueError, match="top-level 'parallel_run_config:'"):
        ParallelRunConfig.load_yaml(None, path)
