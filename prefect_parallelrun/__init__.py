"""prefect-parallelrun: Azure ML's ParallelRunConfig / ParallelRunStep on Prefect 3 and Dask.

The package is laid out by stage, one way through a job:
config -> plan -> dispatch -> execute -> commit -> report.
"""

from prefect_parallelrun.config import DaskCompute, ParallelRunConfig

__all__ = ["DaskCompute", "ParallelRunConfig"]
