"""Dispatch stage: the `parallel_run` flow, its mini-batch tasks, retries and thresholds.

`ParallelRunStep` (prefect_parallelrun/step.py) and the command line (prefect_parallelrun/cli.py)
are the entry points above this stage.
"""

from prefect_parallelrun.dispatch.flow import parallel_run

__all__ = ["parallel_run"]
