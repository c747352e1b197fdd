"""A pipeline on prefect-dask's DaskTaskRunner shares its cluster with the parallel run step."""

from __future__ import annotations

import socket

import pytest
from distributed import get_worker
from prefect import flow, task
from prefect.context import FlowRunContext
from prefect_dask import DaskTaskRunner

from prefect_parallelrun.execute.compute import ComputeTargetError
from tests.jobs import JobBench

pytestmark = pytest.mark.usefixtures("prefect_server")


@task
def write_inputs(bench: JobBench, count: int) -> str:
    """A preprocessing task: it runs on one of the runner's Dask workers."""
    bench.items([f"row r{number}" for number in range(count)])
    return get_worker().name


def test_a_pipeline_on_dask_task_runner_shares_its_cluster_with_the_step(bench: JobBench):
    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "dashboard_address": None}
    )

    @flow(task_runner=runner)
    def pipeline() -> dict:
        prepared_on = write_inputs.submit(bench, 10).result()
        client = FlowRunContext.get().task_runner.client  # the flow run's copy of the runner
        scheduler = client.scheduler.address
        workers = {info["name"] for info in client.scheduler_info()["workers"].values()}
        result = bench.run(compute_target="task_runner", node_count=2, process_count_per_node=1)
        # The cluster is still there for the pipeline's later tasks.
        after = write_inputs.submit(bench, 10).result()
        return dict(result=result, scheduler=scheduler, workers=workers,
                    prepared_on=prepared_on, after=after)

    out = pipeline()
    result = out["result"]
    assert result.status == "Completed", result.message
    assert bench.rows() == [f"r{number}" for number in range(10)]
    nodes = {row["node"] for row in bench.attempt_rows()}
    # The runner's workers are numbered; the job names them after the host.
    worker_names = {f"{socket.gethostname()}-{name}" for name in out["workers"]}
    assert nodes and nodes <= worker_names, (nodes, worker_names)
    assert {out["prepared_on"], out["after"]} <= set(out["workers"])


def test_task_runner_outside_a_dask_task_runner_flow_is_refused_before_anything_runs(
    bench: JobBench,
):
    bench.items(["row a"])
    with pytest.raises(ComputeTargetError, match="outside any flow"):
        bench.run(compute_target="task_runner")

    @flow
    def on_threads() -> None:
        bench.run(compute_target="task_runner")

    with pytest.raises(ComputeTargetError, match="runs on ThreadPoolTaskRunner"):
        on_threads()
    assert not bench.output.exists()
