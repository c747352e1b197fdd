"""Config stage: the run configuration and compute blocks, their parsing, validation and YAML.

The blocks are imported on first use: entry-script processes import `sizes` (through the plan
stage) and must not pay for importing Prefect at every start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect_parallelrun.config.sizes import MiniBatchSize, parse_mini_batch_size
from prefect_parallelrun.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from prefect_parallelrun.config.dask_compute import DaskCompute
    from prefect_parallelrun.config.parallel_run_config import ParallelRunConfig

_BLOCKS = {
    "DaskCompute": "prefect_parallelrun.config.dask_compute",
    "ParallelRunConfig": "prefect_parallelrun.config.parallel_run_config",
}
__all__ = ["DaskCompute", "MiniBatchSize", "ParallelRunConfig", "parse_mini_batch_size"]


__getattr__, __dir__ = lazy_exports(__name__, _BLOCKS, globals())
