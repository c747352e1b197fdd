"""The job's plan, made once: before the flow run when the step (or the command line) starts
the job, so that an input that cannot be planned is refused before any flow run exists.

The plan is handed to the `parallel_run` flow run in the same process through a context
variable, never as a flow parameter: a plan of many mini-batches would be sent to the Prefect
API with the run's parameters. A flow run started any other way (a deployment, a direct call)
plans its inputs itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from prefect_parallelrun.config import ParallelRunConfig
from prefect_parallelrun.plan import Dataset, JobPlan, plan_job


@dataclass(frozen=True)
class _PlannedJob:
    inputs: list[Dataset]
    mini_batch_size: int | str | None
    partition_keys: list[str] | None
    plan: JobPlan

    def is_for(self, inputs: Sequence[Dataset], config: ParallelRunConfig) -> bool:
        return (
            list(inputs) == self.inputs
            and config.mini_batch_size == self.mini_batch_size
            and config.partition_keys == self.partition_keys
        )


_PLANNED: ContextVar[_PlannedJob | None] = ContextVar("parallel_run_planned_job", default=None)


def plan_inputs(inputs: Sequence[Dataset], config: ParallelRunConfig) -> JobPlan:
    """Split `inputs` into mini-batches as the config says (`mini_batch_size`,
    `partition_keys`).

    Args:
        inputs: The job's datasets.
        config: The job's config.

    Returns:
        The job's plan.

    Raises:
        InputError: (a `ValueError`) An input cannot be planned: a path that matches nothing,
            a file that does not match its `partition_format`, an unreadable or corrupt
            table; the message names the input and the fix.
    """
    return plan_job(inputs, config.mini_batch_size, config.partition_keys)


@contextmanager
def planned_before_the_flow(
    inputs: Sequence[Dataset], config: ParallelRunConfig, plan: JobPlan
) -> Iterator[None]:
    """While the body runs, a `parallel_run` flow run of these inputs and config in this
    context uses `plan` instead of planning again.

    Args:
        inputs: The datasets that were planned.
        config: The config they were planned with.
        plan: Their plan (`plan_inputs`).

    Returns:
        A context manager; the plan is forgotten on exit.
    """
    planned = _PlannedJob(list(inputs), config.mini_batch_size, config.partition_keys, plan)
    token = _PLANNED.set(planned)
    try:
        yield
    finally:
        _PLANNED.reset(token)


def plan_for_flow(inputs: Sequence[Dataset], config: ParallelRunConfig) -> JobPlan:
    """The plan made for these inputs just before this flow run, else a new one.

    Args:
        inputs: The flow run's datasets.
        config: The flow run's config.

    Returns:
        The job's plan.

    Raises:
        InputError: (a `ValueError`) An input cannot be planned; see `plan_inputs`.
    """
    planned = _PLANNED.get()
    if planned is not None and planned.is_for(inputs, config):
        return planned.plan
    return plan_inputs(inputs, config)
