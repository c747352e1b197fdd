"""Dispatch stage: the `parallel_run` flow, its mini-batch tasks, retries and thresholds."""

from prefect_parallelrun.dispatch.flow import parallel_run
from prefect_parallelrun.dispatch.step import ParallelRunStep

__all__ = ["ParallelRunStep", "parallel_run"]
