"""prefect-parallelrun: Azure ML's ParallelRunConfig / ParallelRunStep on Prefect 3 and Dask.

The package is laid out by stage, one way through a job:
config -> plan -> dispatch -> execute -> commit -> report.

The public names are imported on first use, so that an entry-script process, which imports
only the execute stage, does not pay for Prefect and Dask at every start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect_parallelrun.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from prefect_parallelrun.config import DaskCompute, ParallelRunConfig
    from prefect_parallelrun.dispatch import parallel_run
    from prefect_parallelrun.execute.entry_script import EntryScript
    from prefect_parallelrun.plan import FileDataset, TabularDataset
    from prefect_parallelrun.report import ParallelRunResult
    from prefect_parallelrun.settings import ParallelRunSettings, get_settings
    from prefect_parallelrun.step import ParallelRunStep

_PUBLIC = {
    "DaskCompute": "prefect_parallelrun.config",
    "EntryScript": "prefect_parallelrun.execute.entry_script",
    "FileDataset": "prefect_parallelrun.plan",
    "ParallelRunConfig": "prefect_parallelrun.config",
    "ParallelRunResult": "prefect_parallelrun.report",
    "ParallelRunSettings": "prefect_parallelrun.settings",
    "ParallelRunStep": "prefect_parallelrun.step",
    "TabularDataset": "prefect_parallelrun.plan",
    "get_settings": "prefect_parallelrun.settings",
    "parallel_run": "prefect_parallelrun.dispatch",
}
__all__ = [
    "DaskCompute",
    "EntryScript",
    "FileDataset",
    "ParallelRunConfig",
    "ParallelRunResult",
    "ParallelRunSettings",
    "ParallelRunStep",
    "TabularDataset",
    "get_settings",
    "parallel_run",
]


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC, globals())
