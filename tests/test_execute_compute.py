"""Compute targets: "local", a scheduler address, a DaskCompute block or its saved name."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from distributed import Client, LocalCluster

from prefect_parallelrun.execute import hardware
from prefect_parallelrun.execute.compute import ComputeTargetError, open_compute
from prefect_parallelrun.execute.hardware import default_process_count, visible_gpus

# Several clusters in one test process compete for the default HTTP port; only noise.
pytestmark = pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning")


def descendants() -> set[int]:
    """Running child processes of this test process, but multiprocessing's resource tracker."""
    found = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if "multiprocessing.resource_tracker" not in " ".join(process.cmdline()):
                found.add(process.pid)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue  # ended (a zombie not yet reaped by its parent is not running)
    return found


def assert_nothing_left_since(before: set[int]) -> None:
    left = [psutil.Process(pid) for pid in descendants() - before if psutil.pid_exists(pid)]
    _, alive = psutil.wait_procs(left, timeout=10)
    assert alive == [], "the compute target left processes behind"


def block(**fields: Any) -> SimpleNamespace:
    """A stand-in for the DaskCompute block: any object with its four fields will do."""
    defaults = {"address": None, "cluster_class": None, "cluster_kwargs": {}, "adapt_kwargs": None}
    return SimpleNamespace(**(defaults | fields))


def worker_threads(client: Client) -> list[int]:
    return sorted(w["nthreads"] for w in client.scheduler_info()["workers"].values())


@pytest.fixture(scope="module")
def running_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        yield cluster


def test_local_starts_node_count_worker_processes_and_closes_them() -> None:
    before = descendants()
    with open_compute("local", node_count=2, process_count_per_node=1) as client:
        client.wait_for_workers(2)
        assert worker_threads(client) == [1, 1]
        assert len(descendants() - before) >= 2, "the workers are not processes"
    assert_nothing_left_since(before)


def test_a_scheduler_address_is_used_and_left_running(running_cluster: LocalCluster) -> None:
    address = running_cluster.scheduler_address
    with open_compute(address, node_count=1, process_count_per_node=None) as client:
        assert client.submit(sum, [1, 2]).result() == 3
    with Client(address) as still_there:
        assert worker_threads(still_there) == [1]


def test_a_block_with_an_address_uses_that_scheduler(running_cluster: LocalCluster) -> None:
    target = block(address=running_cluster.scheduler_address)
    with open_compute(target, node_count=1, process_count_per_node=1) as client:
        assert client.scheduler.address == running_cluster.scheduler_address


def test_a_block_cluster_class_is_started_scaled_to_node_count_and_closed() -> None:
    target = block(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": 0, "processes": False, "dashboard_address": None},
    )
    with open_compute(target, node_count=2, process_count_per_node=1) as client:
        client.wait_for_workers(2, timeout=30)
        cluster = client.cluster
        assert len(client.scheduler_info()["workers"]) == 2
    assert cluster.status.name == "closed"


def test_a_block_with_adapt_kwargs_adapts_instead_of_scaling() -> None:
    target = block(
        cluster_kwargs={"processes": False, "dashboard_address": None},
        adapt_kwargs={"minimum": 1, "maximum": 1},
    )
    with open_compute(target, node_count=3, process_count_per_node=1) as client:
        client.wait_for_workers(1, timeout=30)
        assert client.submit(sum, [1, 2]).result() == 3
        assert len(client.scheduler_info()["workers"]) == 1


def test_a_block_name_is_loaded_with_the_given_loader(running_cluster: LocalCluster) -> None:
    saved = {"gpu-cluster": block(address=running_cluster.scheduler_address)}
    with open_compute("gpu-cluster", 1, 1, load_block=saved.__getitem__) as client:
        assert client.scheduler.address == running_cluster.scheduler_address


@pytest.mark.parametrize(
    ("target", "load_block", "message"),
    [
        ("my-cluster", None, "no saved DaskCompute block can be looked up"),
        ("my-cluster", {}.__getitem__, "no saved DaskCompute block has that name"),
        (block(address="tcp://h:8786", cluster_class="x.Y"), None, "not both"),
        (block(cluster_class="no_such_module.Cluster"), None, "cannot be imported"),
        (42, None, "got a int"),
    ],
)
def test_a_bad_compute_target_is_refused_before_anything_starts(
    target: Any, load_block: Any, message: str
) -> None:
    with pytest.raises(ComputeTargetError, match=message):
        open_compute(target, 1, 1, load_block=load_block)


@pytest.fixture
def gpus_from_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    visible_gpus.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    visible_gpus.cache_clear()


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("0,1", ("0", "1")),
        ("3", ("3",)),
        ("", ()),
        ("-1", ()),
        ("GPU-aaaa, GPU-bbbb", ("GPU-aaaa", "GPU-bbbb")),
    ],
)
def test_visible_gpus_follow_cuda_visible_devices(
    gpus_from_env: pytest.MonkeyPatch, visible: str, expected: tuple[str, ...]
) -> None:
    gpus_from_env.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert visible_gpus() == expected


def test_default_process_count_is_one_per_gpu_else_one_per_cpu(
    gpus_from_env: pytest.MonkeyPatch,
) -> None:
    gpus_from_env.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert default_process_count() == 4
    assert default_process_count(nodes_on_this_machine=2) == 2

    gpus_from_env.setenv("CUDA_VISIBLE_DEVICES", "")
    visible_gpus.cache_clear()
    assert default_process_count() == hardware.cpu_count()
