"""SLURM for real: a job's workers submitted by dask-jobqueue's SLURMCluster to a single-node
SLURM cluster (munged, slurmctld, slurmd) started on this machine."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from prefect_parallelrun import DaskCompute
from prefect_parallelrun.execute.compute import open_compute
from tests import slurm
from tests.jobs import JobBench, wait_until

pytest.importorskip("dask_jobqueue")

slurm_cluster = slurm.slurm_cluster


def slurm_compute(cluster: slurm.SlurmCluster, folder: Path) -> DaskCompute:
    """One Dask worker per SLURM job, 1 core each, reaching the flow's scheduler on loopback."""
    return DaskCompute(
        cluster_class="dask_jobqueue.SLURMCluster",
        cluster_kwargs={
            "queue": cluster.partition,
            "cores": 1,
            "processes": 1,
            "memory": "1GB",
            "walltime": "00:20:00",
            "python": sys.executable,
            "interface": "lo",
            "scheduler_options": {"dashboard_address": "127.0.0.1:0"},
            "local_directory": str(folder / "worker-space"),
            "log_directory": str(folder / "worker-jobs"),
            "job_extra_directives": [f"--chdir={folder}"],
        },
    )


@pytest.mark.slow
def test_all_slurm_workers_have_joined_when_the_cluster_is_handed_over(
    slurm_cluster: slurm.SlurmCluster, tmp_path: Path
):
    """scale() only submits the worker jobs; a job that started on the first worker to join
    would count its slots from it alone and leave the other nodes idle."""
    compute = slurm_compute(slurm_cluster, tmp_path)
    with open_compute(compute, node_count=2, process_count_per_node=None) as client:
        workers = client.scheduler_info()["workers"].values()
        assert sorted(worker["name"] for worker in workers) == ["SLURMCluster-0", "SLURMCluster-1"]
    assert wait_until(lambda: not slurm_cluster.queued_jobs(), 60), slurm_cluster.queued_jobs()


@pytest.mark.usefixtures("prefect_server")
def test_a_job_runs_on_slurm_jobs_and_they_end_with_it(
    slurm_cluster: slurm.SlurmCluster, bench: JobBench, caplog: pytest.LogCaptureFixture
):
    bench.items([f"row r{number}" for number in range(12)])
    compute = slurm_compute(slurm_cluster, bench.root)
    result = bench.run(compute_target=compute, node_count=2, process_count_per_node=1)
    assert result.status == "Completed", f"{result.message}\n{slurm_cluster.diagnostics()}"
    # The scheduler runs in this process: its INFO lines must not bury the job's own log.
    noise = [
        f"{record.name}: {record.getMessage()}" for record in caplog.records
        if record.name.startswith("distributed") or record.levelno >= logging.ERROR
    ]
    assert noise == [], noise
    assert bench.rows() == [f"r{number}" for number in range(12)]
    nodes = {row["node"] for row in bench.attempt_rows()}
    assert nodes == {"SLURMCluster-0", "SLURMCluster-1"}  # both SLURM jobs' workers ran some
    logs = bench.output / "logs" / "user" / "stdout"
    assert {folder.name for folder in logs.iterdir()} == nodes
    worker_jobs = sorted(path.name for path in (bench.root / "worker-jobs").glob("*.err"))
    assert len(worker_jobs) == 2, worker_jobs  # each worker ran as a SLURM batch job
    # Closing the cluster cancels the worker jobs; SLURM then lets them complete.
    assert wait_until(lambda: not slurm_cluster.queued_jobs(), 60), slurm_cluster.queued_jobs()
    assert wait_until(lambda: not slurm_cluster.job_processes(), 60), slurm_cluster.job_processes()
