"""The package's Prefect blocks, imported together.

The `prefect.collections` entry point names this module: a Prefect server started in the same
environment imports it at start-up and lists both blocks in its catalog, as does
`prefect block register -m prefect_parallelrun`. (`prefect_parallelrun.config` itself imports
the blocks lazily, so naming it would define no block at all.)
"""

from prefect_parallelrun.config.dask_compute import DaskCompute
from prefect_parallelrun.config.parallel_run_config import ParallelRunConfig

__all__ = ["DaskCompute", "ParallelRunConfig"]
