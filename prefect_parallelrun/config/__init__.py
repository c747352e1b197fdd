"""Config stage: the run configuration and compute blocks, their parsing, validation and YAML.

The blocks are imported on first use: entry-script processes import `sizes` (through the plan
stage) and must not pay for importing Prefect at every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from prefect_parallelrun.config.sizes import MiniBatchSize, parse_mini_batch_size

if TYPE_CHECKING:
    from prefect_parallelrun.config.dask_compute import DaskCompute
    from prefect_parallelrun.config.parallel_run_config import ParallelRunConfig

_BLOCKS = {
    "DaskCompute": "prefect_parallelrun.config.dask_compute",
    "ParallelRunConfig": "prefect_parallelrun.config.parallel_run_config",
}
__all__ = ["DaskCompute", "MiniBatchSize", "ParallelRunConfig", "parse_mini_batch_size"]


def __getattr__(name: str) -> Any:
    if name not in _BLOCKS:
        raise AttributeError(f"module 'prefect_parallelrun.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(_BLOCKS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # Prefect finds the blocks to register (`prefect block register -m`) through dir().
    return sorted(set(globals()) | set(_BLOCKS))
