"""prefect.yaml deploys to a real server, a process worker runs the pipeline, schedules stick."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.flows import load_flow_from_entrypoint
from prefect.settings import PREFECT_API_URL
from prefect.utilities.callables import parameter_schema

from tests.jobs import JobBench, stop_process

ROOT = Path(__file__).resolve().parents[1]
POOL = "parallel-run-pool"  # the work pool prefect.yaml names
PIPELINE = "scoring-pipeline/nightly"
ENTRYPOINTS = [
    deployment["entrypoint"]
    for deployment in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
]


def prefect(*arguments: str, timeout: float = 240) -> str:
    """Run the `prefect` command line against the test server, from the repository root."""
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *arguments],
        cwd=ROOT, env=server_environment(), capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"prefect {' '.join(arguments)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def server_environment() -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}


def expected_summary(readings_folder: Path) -> dict:
    """What aggregate must find, computed straight from the files prepare_inputs wrote."""
    per_file = {
        path.name: [float(value) for value in path.read_text().split()]
        for path in sorted(readings_folder.glob("sensor-*.txt"))
    }
    everything = [value for values in per_file.values() for value in values]
    peak_file = max(per_file, key=lambda name: max(per_file[name]))
    return {
        "files": len(per_file),
        "readings": len(everything),
        "mean": round(sum(everything) / len(everything), 4),
        "peak": max(everything),
        "peak_file": peak_file,
    }


def run_worker_once(log_file: Path) -> None:
    """`prefect worker start --run-once`: one poll, then wait for the runs it started."""
    with log_file.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--run-once",
             "--limit", "1", "--type", "process"],
            cwd=ROOT, env=server_environment(), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        worker.wait(timeout=420)
    finally:
        stop_process(worker, timeout=20)


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_every_deployed_flow_parameter_is_described_in_the_run_form(
    entrypoint: str, monkeypatch: pytest.MonkeyPatch
):
    # The UI's run form shows these descriptions, taken from the docstring's Args section.
    monkeypatch.chdir(ROOT)
    flow = load_flow_from_entrypoint(entrypoint)
    properties = parameter_schema(flow.fn).properties
    assert set(properties) == set(flow.parameters.properties)
    undescribed = [name for name, field in properties.items() if not field.get("description")]
    assert not undescribed, f"{flow.name}: no description for {undescribed}"


def test_prefect_yaml_deploys_the_pipeline_and_a_worker_runs_it(prefect_server, bench: JobBench):
    prefect("work-pool", "create", POOL, "--type", "process", "--overwrite")
    prefect("--no-prompt", "deploy", "--all")

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(PIPELINE)
        assert client.read_deployment_by_name("parallel-run/batch-inference").work_pool_name \
            == POOL
    assert deployment.work_pool_name == POOL
    (schedule,) = deployment.schedules
    assert schedule.schedule.cron == "0 2 * * *"
    assert schedule.schedule.timezone == "UTC"
    assert schedule.active

    work_dir = bench.root / "pipeline"
    started = prefect(
        "deployment", "run", PIPELINE, "--param", f"work_dir={work_dir}", "--param", "files=12",
        "--param", "files_per_mini_batch=4",
    )
    flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", started).group(1)
    worker_log = bench.root / "worker.log"
    run_worker_once(worker_log)

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
    assert flow_run.state.is_completed(), (
        f"{flow_run.state}\nworker log:\n{worker_log.read_text()[-4000:]}"
    )
    summary = json.loads((work_dir / "summary.json").read_text())
    expected = expected_summary(work_dir / "readings")
    # The pipeline averages per-file means rounded to 4 decimals: equal within that rounding.
    assert summary.pop("mean") == pytest.approx(expected.pop("mean"), abs=1e-4)
    assert summary == expected
    assert summary["files"] == 12
    assert len((work_dir / "scores" / "scores.txt").read_text().splitlines()) == 12
