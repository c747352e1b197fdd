"""Config stage: the run configuration and compute blocks, their parsing, validation and YAML."""

from prefect_parallelrun.config.dask_compute import DaskCompute
from prefect_parallelrun.config.parallel_run_config import ParallelRunConfig
from prefect_parallelrun.config.sizes import MiniBatchSize, parse_mini_batch_size

__all__ = ["DaskCompute", "MiniBatchSize", "ParallelRunConfig", "parse_mini_batch_size"]
