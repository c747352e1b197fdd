"""What a job shows in Prefect: task runs per mini-batch, artifacts, and no secrets."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
)

from prefect_parallelrun.dispatch.flow import parallel_run
from tests.jobs import JobBench, flow_run_logs, settled_task_runs

pytestmark = pytest.mark.usefixtures("prefect_server")
SECRET = "hunter2-s3cr3t-value"


def test_a_job_shows_its_mini_batches_artifacts_and_keeps_its_secret(bench: JobBench):
    bench.items(["ok", "raise", "ok"])
    config = bench.config(run_max_try=2, environment_variables={"API_TOKEN": SECRET})
    step = bench.step(config)
    state = parallel_run(
        config=config, inputs=step.inputs, output=step.output, allow_reuse=False,
        return_state=True,
    )
    assert state.is_completed()
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    logs = flow_run_logs(flow_run_id)
    by_name = settled_task_runs(flow_run_id)
    assert set(by_name) == {"mini-batch-0", "mini-batch-1", "mini-batch-2"}
    assert by_name["mini-batch-1"].state.is_failed()
    assert by_name["mini-batch-1"].run_count == 2
    assert by_name["mini-batch-0"].state.is_completed()

    kinds = {artifact.type: artifact for artifact in artifacts}
    assert float(kinds["progress"].data) == 100.0
    assert "item-001.txt" in str(kinds["table"].data)
    job_result = (bench.output / "logs" / "job_result.txt").read_text()
    assert kinds["markdown"].data.replace("  \n", "\n") == job_result

    assert SECRET not in str(flow_run.parameters)
    assert all(SECRET not in log.message for log in logs)
    for path in (bench.output / "logs").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
