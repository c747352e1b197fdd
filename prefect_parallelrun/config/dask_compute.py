"""The `DaskCompute` block: where a job's Dask cluster comes from."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, model_validator

from prefect_parallelrun.config.documentation import docs_page


class DaskCompute(Block):
    """The Dask cluster a parallel run uses: an existing scheduler, or a cluster class to start.

    Give `address` to use a running scheduler (left running after the job), or `cluster_class`
    (with `cluster_kwargs`) to start a cluster for the job and close it afterwards. With neither,
    the job starts a `distributed.LocalCluster` on this machine.

    Example:
        Load a saved cluster description and use it as a config's compute target:
        ```python
        from prefect_parallelrun import DaskCompute

        compute = DaskCompute.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Dask Compute"
    _block_type_slug = "parallel-run-dask-compute"
    _logo_url = None  # see config/documentation.py
    _documentation_url = docs_page("reference/compute")

    address: str | None = Field(
        default=None,
        description="Address of a running Dask scheduler, such as tcp://10.0.0.5:8786.",
    )
    cluster_class: str | None = Field(
        default=None,
        description=(
            "Dotted path of a Dask cluster class to start for the job, "
            "such as dask_jobqueue.SLURMCluster."
        ),
    )
    cluster_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments passed to the cluster class when it is started.",
    )
    adapt_kwargs: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Keyword arguments for cluster.adapt(), such as minimum and maximum; "
            "when unset the cluster is scaled to node_count workers."
        ),
    )

    @model_validator(mode="after")
    def _address_or_cluster_class(self) -> DaskCompute:
        # As in prefect-dask's DaskTaskRunner: one existing cluster or one to start, never both.
        if self.address and self.cluster_class:
            raise ValueError(
                "DaskCompute takes either 'address' (a running scheduler) or 'cluster_class' "
                "(a cluster to start), not both."
            )
        if self.address and (self.cluster_kwargs or self.adapt_kwargs):
            raise ValueError(
                "DaskCompute 'cluster_kwargs' and 'adapt_kwargs' apply to a cluster the job "
                "starts; they cannot be used with 'address'."
            )
        return self
