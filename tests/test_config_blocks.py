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
    def _no_logo_on_purpose(self, request, block):
        if request.node.name == "test_has_a_valid_image":
            # The UI would show a remote logo as a broken image wherever the browser is offline.
            assert block._logo_url is None
            pytest.skip("the blocks have no logo on purpose (config/documentation.py says why)")


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


def registered_schema(client, block: type[Block]) -> dict:
    """The block's schema as the server holds it (the UI's block form is drawn from it)."""
    return client.read_block_schema_by_checksum(block._calculate_schema_checksum()).fields


def test_registered_blocks_describe_every_field_and_offer_choices():
    from prefect.settings import PREFECT_API_URL

    completed = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "prefect_parallelrun"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with get_client(sync_client=True) as client:
        schemas = {block: registered_schema(client, block) for block in (ParallelRunConfig,
                                                                          DaskCompute)}
        block_types = {
            block: client.read_block_type_by_slug(block.get_block_type_slug())
            for block in schemas
        }
    for block, schema in schemas.items():
        assert set(schema["properties"]) == set(block.model_fields), block
        for name, field in schema["properties"].items():
            assert field.get("description", "").endswith("."), f"{block.__name__}.{name}"
        # The UI's "documentation" link goes into the docs site; no logo, so none is broken.
        block_type = block_types[block]
        assert str(block_type.documentation_url).startswith(
            "https://prefect-parallelrun.github.io/prefect-parallelrun/reference/"
        )
        assert block_type.logo_url is None
    config_fields = schemas[ParallelRunConfig]["properties"]
    assert config_fields["output_action"]["enum"] == ["append_row", "summary_only"]
    assert config_fields["logging_level"]["enum"] == [
        "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"
    ]
    # Defaults appear in the form.
    assert config_fields["logging_level"]["default"] == "INFO"
    assert config_fields["run_invocation_timeout"]["default"] == 60
    assert config_fields["run_max_try"]["default"] == 3


def test_the_choice_fields_still_take_strings_in_any_case():
    config = make_config(output_action="Summary_Only", logging_level="warning")
    assert config.output_action == "summary_only"
    assert config.logging_level == "WARNING"
    with pytest.raises(ValueError, match="output_action must be one of"):
        make_config(output_action="append")
    with pytest.raises(ValueError, match="logging_level must be one of"):
        make_config(logging_level="LOUD")
