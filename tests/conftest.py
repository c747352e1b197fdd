"""Shared fixtures: one real temporary Prefect server for the whole session."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from prefect.testing.utilities import prefect_test_harness

from tests.jobs import DaskProcesses, JobBench, process_tree_pids

# The test server must not try to reach the internet (this machine is offline).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


# Tests that start a Prefect server, whole jobs or Dask processes: `make test-quick` leaves them
# out (`-m "not slow"`) for a fast loop while editing; `make test` runs everything.
SLOW_FIXTURES = {"prefect_server", "bench", "dask_processes"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def prefect_server():
    """A real temporary Prefect API server (SQLite), shared by every test that needs one."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> JobBench:
    """A folder for one job; afterwards, no process the job started may be left running."""
    before = process_tree_pids()
    yield JobBench(tmp_path, monkeypatch)
    deadline = time.monotonic() + 15
    while (left := process_tree_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left behind: {left}"


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A fresh folder on fsspec's in-memory filesystem, removed afterwards."""
    root = f"memory://plan-test-{uuid.uuid4().hex}"
    yield root
    filesystem = fsspec.filesystem("memory")
    if filesystem.exists(root):
        filesystem.rm(root, recursive=True)


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[DaskProcesses]:
    """A running `dask scheduler` and one `dask worker` (2 threads), stopped by PID after."""
    cluster = DaskProcesses(tmp_path / "dask")
    try:
        yield cluster
    finally:
        cluster.stop()
