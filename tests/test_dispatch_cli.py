"""The prefect-parallelrun command: validate a config, run a job, exit status and stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from tests.jobs import SCRIPTS, JobBench


def cli(
    *arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prefect_parallelrun.dispatch.cli", *arguments],
        capture_output=True, text=True, timeout=300, env=env, cwd=cwd,
    )


def write_config(path: Path, **overrides: object) -> Path:
    fields = {
        "source_directory": str(SCRIPTS), "entry_script": "job_behaviours.py",
        "mini_batch_size": "2", "error_threshold": -1, "output_action": "append_row",
        "compute_target": "local", "node_count": 1, "process_count_per_node": 1,
        "environment_variables": {"API_TOKEN": "s3cr3t"},
        **overrides,
    }
    from prefect_parallelrun import ParallelRunConfig

    ParallelRunConfig(**fields).save_to_yaml(path)
    return path


def test_validate_prints_the_config_without_its_secrets(tmp_path: Path):
    completed = cli("validate", str(write_config(tmp_path / "config.yml")))
    assert completed.returncode == 0, completed.stderr
    assert "valid parallel_run_config" in completed.stdout
    assert "entry_script: job_behaviours.py" in completed.stdout
    assert "s3cr3t" not in completed.stdout


def test_validate_names_the_bad_field_on_stderr(tmp_path: Path):
    path = write_config(tmp_path / "config.yml")
    path.write_text(path.read_text().replace("node_count: 1", "node_count: 0"))
    completed = cli("validate", str(path))
    assert completed.returncode == 2
    assert "node_count" in completed.stderr


@pytest.mark.usefixtures("prefect_server")
def test_run_exits_0_on_success_and_1_with_the_reason_on_failure(bench: JobBench):
    bench.items(["ok", "ok", "raise", "raise"])
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    config = write_config(bench.root / "config.yml", run_max_try=1)
    completed = cli(
        "run", str(config), "--input", str(bench.inputs), "--output", str(bench.output),
        "--no-reuse", env=environment,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("Completed:")
    assert bench.rows() == ["item-000.txt ok", "item-001.txt ok"]

    strict = write_config(bench.root / "strict.yml", run_max_try=1, error_threshold=0)
    completed = cli(
        "run", str(strict), "--input", str(bench.inputs), "--output", str(bench.root / "out2"),
        env=environment,
    )
    assert completed.returncode == 1
    assert "error_threshold crossed" in completed.stderr


@pytest.mark.usefixtures("prefect_server")
def test_run_takes_paths_relative_to_where_it_is_started(bench: JobBench):
    bench.items(["ok"] * 5)
    (bench.root / "scripts").mkdir()
    (bench.root / "scripts" / "score.py").write_text((SCRIPTS / "job_behaviours.py").read_text())
    write_config(bench.root / "config.yml", source_directory="scripts", entry_script="score.py")
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    completed = cli(
        "run", "config.yml", "--input", "inputs", "--output", "out",
        "--mini-batches-per-task", "2", env=environment, cwd=bench.root,
    )
    assert completed.returncode == 0, completed.stderr
    assert (bench.root / "out" / "parallel_run_step.txt").read_text().splitlines() == [
        f"item-{number:03d}.txt ok" for number in range(5)
    ]


def test_run_refuses_a_bad_mini_batches_per_task(tmp_path: Path):
    completed = cli(
        "run", str(write_config(tmp_path / "config.yml")), "--input", str(tmp_path),
        "--output", str(tmp_path / "out"), "--mini-batches-per-task", "0",
    )
    assert completed.returncode == 2
    assert "mini_batches_per_task must be a positive whole number or 'auto'; got 0" in (
        completed.stderr
    )
