"""A cluster manager for real: dask-jobqueue's own job machinery, behind a DaskCompute block."""

from __future__ import annotations

import pytest

from prefect_parallelrun import DaskCompute
from tests.jobs import JobBench

pytest.importorskip("dask_jobqueue")
pytestmark = pytest.mark.usefixtures("prefect_server")


def test_a_job_runs_on_dask_jobqueue_workers_launched_as_jobs(bench: JobBench):
    """dask-jobqueue's LocalCluster submits each worker as a local job (a job script run as a
    process), as SLURMCluster submits it to SLURM: the same code path up to the submit."""
    bench.items([f"row r{number}" for number in range(12)])
    compute = DaskCompute(
        cluster_class="dask_jobqueue.local.LocalCluster",
        cluster_kwargs={"cores": 1, "memory": "1GB", "processes": 1},
    )
    result = bench.run(compute_target=compute, node_count=2, process_count_per_node=1)
    assert result.status == "Completed", result.message
    assert bench.rows() == [f"r{number}" for number in range(12)]
    nodes = {row["node"] for row in bench.attempt_rows()}
    assert len(nodes) == 2, nodes  # both job-launched workers ran mini-batches
    logs = bench.output / "logs" / "user" / "stdout"
    assert {folder.name for folder in logs.iterdir()} == nodes
