"""prefect-parallelrun: Azure ML's ParallelRunConfig / ParallelRunStep on Prefect 3 and Dask.

The package is laid out by stage, one way through a job:
config -> plan -> dispatch -> execute -> commit -> report.

The public names are imported on first use, so that an entry-script process, which imports
only the execute stage, does not pay for Prefect and Dask at every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect_parallelrun.config import DaskCompute, ParallelRunConfig
    from prefect_parallelrun.dispatch import ParallelRunStep, parallel_run
    from prefect_parallelrun.execute.entry_script import EntryScript
    from prefect_parallelrun.plan import FileDataset, TabularDataset
    from prefect_parallelrun.report import ParallelRunResult

_PUBLIC = {
    "DaskCompute": "prefect_parallelrun.config",
    "EntryScript": "prefect_parallelrun.execute.entry_script",
    "FileDataset": "prefect_parallelrun.plan",
    "ParallelRunConfig": "prefect_parallelrun.config",
    "ParallelRunResult": "prefect_parallelrun.report",
    "ParallelRunStep": "prefect_parallelrun.dispatch",
    "TabularDataset": "prefect_parallelrun.plan",
    "parallel_run": "prefect_parallelrun.dispatch",
}
__all__ = [
    "DaskCompute",
    "EntryScript",
    "FileDataset",
    "ParallelRunConfig",
    "ParallelRunResult",
    "ParallelRunStep",
    "TabularDataset",
    "parallel_run",
]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'prefect_parallelrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # `prefect block register -m prefect_parallelrun` finds the blocks through dir().
    return sorted(set(globals()) | set(_PUBLIC))
