"""`compute_target="task_runner"`: run the job on the cluster of the flow that calls the step.

A pipeline whose flow runs on prefect-dask's `DaskTaskRunner` already has a Dask cluster for its
other tasks (preprocessing, aggregation). With this target, `ParallelRunStep.run()` looks up the
calling flow's task runner and gives the job that cluster's scheduler address, so both share one
cluster and the job leaves it running for the flow's later tasks.
"""

from __future__ import annotations

from typing import Any

from prefect.context import FlowRunContext

from prefect_parallelrun.execute.compute import TASK_RUNNER, ComputeTargetError

HOW = (
    'compute_target="task_runner" runs the job on the Dask cluster of the flow that calls '
    "ParallelRunStep.run(); "
)


def is_task_runner_target(compute_target: Any) -> bool:
    """Whether a config's `compute_target` is "task_runner" (any case).

    Args:
        compute_target: The config's compute target.

    Returns:
        True for "task_runner".
    """
    return isinstance(compute_target, str) and compute_target.strip().lower() == TASK_RUNNER


def calling_flow_scheduler_address() -> str:
    """The scheduler address of the calling flow's `DaskTaskRunner` (it starts the cluster when
    the flow has not used it yet).

    Returns:
        The scheduler's address.

    Raises:
        ComputeTargetError: No calling flow, or it does not run on a `DaskTaskRunner`; the
            message says what to change.
    """
    context = FlowRunContext.get()
    if context is None:
        raise ComputeTargetError(
            f"{HOW}here it is called outside any flow. Call it inside a @flow whose "
            "task_runner is prefect_dask.DaskTaskRunner, or give another compute_target."
        )
    runner = context.task_runner
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:  # pragma: no cover - prefect-dask is a dependency
        raise ComputeTargetError(f"{HOW}it needs the prefect-dask package ({exc}).") from exc
    if not isinstance(runner, DaskTaskRunner):
        flow_name = context.flow.name if context.flow is not None else "?"
        raise ComputeTargetError(
            f"{HOW}the calling flow {flow_name!r} runs on {type(runner).__name__}. "
            "Give the flow task_runner=DaskTaskRunner(...), or give another compute_target."
        )
    return runner.client.scheduler.address
