"""Shared fixtures: one real temporary Prefect server for the whole session."""

from __future__ import annotations

import os

import pytest
from prefect.testing.utilities import prefect_test_harness

# The test server must not try to reach the internet (this machine is offline).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_server():
    """A real temporary Prefect API server (SQLite), shared by every test that needs one."""
    with prefect_test_harness(server_startup_timeout=120):
        yield
