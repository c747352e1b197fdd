"""A cluster class whose workers never come: the job says what it waits for, then fails.

The cluster is distributed's own `SpecCluster`, its scheduler real; each worker it scales to is
a `ProcessInterface` with nothing behind it, as a batch job that sits in a queue which never
runs it: submitted, never joining.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from prefect_parallelrun import DaskCompute
from prefect_parallelrun.execute.cluster_workers import ClusterWorkersTimeoutError
from prefect_parallelrun.execute.compute import ComputeTargetError, open_compute
from tests.jobs import JobBench

TIMEOUT_VARIABLE = "PREFECT_PARALLELRUN_CLUSTER_WORKERS_TIMEOUT_SECONDS"
QUEUED_FOREVER = {"cls": "distributed.deploy.spec.ProcessInterface", "options": {}}


def never_joining_cluster(**workers: dict[str, Any]) -> DaskCompute:
    """A SpecCluster with `workers` at first; every worker it is scaled to beyond them is a
    job queued forever."""
    return DaskCompute(
        cluster_class="distributed.SpecCluster",
        cluster_kwargs={
            "workers": workers,
            "scheduler": {"cls": "distributed.Scheduler",
                          "options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}},
            "worker": QUEUED_FOREVER,
        },
    )


def messages(caplog: pytest.LogCaptureFixture, logger_name: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == logger_name]


def test_workers_that_never_join_fail_the_open_naming_the_class_and_the_count(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setenv(TIMEOUT_VARIABLE, "3")
    logger = logging.getLogger("tests.cluster_waiting")
    caplog.set_level(logging.INFO, logger=logger.name)
    with pytest.raises(ClusterWorkersTimeoutError) as raised:  # noqa: SIM117
        with open_compute(
            never_joining_cluster(), node_count=2, process_count_per_node=1, logger=logger
        ):
            pytest.fail("the job went on without its workers")
    message = str(raised.value)
    assert message.startswith(
        "Only 0 of the 2 Dask workers of the distributed.SpecCluster cluster joined within 3 s"
    ), message
    for what_to_check in ("before running any mini-batch", "queue", "cluster_kwargs",
                          TIMEOUT_VARIABLE):
        assert what_to_check in message, message
    assert isinstance(raised.value, ComputeTargetError)
    assert messages(caplog, logger.name)[0].startswith(
        "Waiting for 2 Dask workers of the distributed.SpecCluster cluster (0 joined so far)"
    ), caplog.text


@pytest.mark.slow  # it waits past the first 30 s for the line that says it still waits
def test_a_long_wait_says_how_many_joined_until_it_gives_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setenv(TIMEOUT_VARIABLE, "33")
    logger = logging.getLogger("tests.cluster_waiting")
    caplog.set_level(logging.INFO, logger=logger.name)
    one_real_worker = {"cls": "distributed.Worker", "options": {"nthreads": 1}}
    with pytest.raises(ClusterWorkersTimeoutError, match="Only 1 of the 2 Dask workers"):  # noqa: SIM117
        with open_compute(
            never_joining_cluster(real=one_real_worker), node_count=2, process_count_per_node=1,
            logger=logger,
        ):
            pytest.fail("the job went on without its workers")
    lines = messages(caplog, logger.name)
    assert lines[0].startswith(
        "Waiting for 2 Dask workers of the distributed.SpecCluster cluster (1 joined so far)"
    ), lines
    assert any(
        line.startswith("Still waiting for Dask workers of the distributed.SpecCluster "
                        "cluster: 1 of 2 joined after")
        for line in lines[1:]
    ), lines


@pytest.mark.usefixtures("prefect_server")
def test_a_job_whose_workers_never_join_fails_before_any_mini_batch(
    bench: JobBench, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setenv(TIMEOUT_VARIABLE, "3")
    caplog.set_level(logging.INFO)
    bench.items(["row a", "row b"])
    with pytest.raises(ComputeTargetError, match="Only 0 of the 2 Dask workers of the "
                       "distributed.SpecCluster cluster joined within 3 s"):
        bench.run(compute_target=never_joining_cluster(), node_count=2, process_count_per_node=1)
    assert bench.calls() == {}, "a mini-batch ran"
    assert not (bench.output / "parallel_run_step.txt").exists()
    assert any(
        "Waiting for 2 Dask workers of the distributed.SpecCluster cluster (0 joined so far)"
        in record.getMessage() for record in caplog.records
    ), caplog.text
