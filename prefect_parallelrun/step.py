"""`ParallelRunStep`: Azure ML's step object, run as the `parallel_run` Prefect flow.

This is the package's entry point for Python callers (the command line is `cli.py` beside
it); `ParallelRunResult`, what `run()` returns, is importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect_parallelrun.config import DaskCompute, ParallelRunConfig
from prefect_parallelrun.dispatch.api_outage import riding_out_api_outages
from prefect_parallelrun.dispatch.arguments import check_arguments
from prefect_parallelrun.dispatch.embedded_api import start_embedded_api
from prefect_parallelrun.dispatch.fingerprint import check_entry_script
from prefect_parallelrun.dispatch.flow import check_output, parallel_run
from prefect_parallelrun.dispatch.grouping import (
    AUTO,
    MiniBatchesPerTask,
    check_mini_batches_per_task,
)
from prefect_parallelrun.dispatch.shared_cluster import (
    calling_flow_scheduler_address,
    is_task_runner_target,
)
from prefect_parallelrun.execute.compute import compute_target_for
from prefect_parallelrun.plan import Dataset
from prefect_parallelrun.report import ParallelRunResult, ProgressListener, listening

__all__ = ["ParallelRunResult", "ParallelRunStep", "result_of"]



class ParallelRunStep:
    """Run an entry script over mini-batches of `inputs`, as Azure ML's ParallelRunStep does.

    Contract: the inputs are split into mini-batches (docs/inputs.md); every entry-script process
    calls the script's `init()` once, then `run(mini_batch)` per mini-batch, where the
    mini-batch is a list of local file paths or a pandas DataFrame; `run()` returns a list,
    tuple or DataFrame with one element per succeeded item. A failed attempt is retried up to
    `run_max_try` attempts; the job aborts when a threshold of the config is crossed.

    `run()` returns a `ParallelRunResult` whatever the job's outcome, and raises only for
    invalid arguments, before anything runs. Called inside a `@flow`, the run is a subflow.

    Example:
        ```python
        from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep

        config = ParallelRunConfig(
            entry_script="score.py", source_directory="scripts", mini_batch_size="10",
            error_threshold=10, output_action="append_row", compute_target="local",
            node_count=1,
        )
        step = ParallelRunStep(
            name="score", parallel_run_config=config,
            inputs=[FileDataset.from_files("images/").as_named_input("images")],
            output="scores/",
        )
        result = step.run()
        print(result.status, result.output_file)
        ```
    """

    def __init__(
        self,
        name: str,
        parallel_run_config: ParallelRunConfig,
        inputs: Sequence[Dataset],
        output: str | None = None,
        side_inputs: Sequence[Dataset] | None = None,
        arguments: Sequence[str] | None = None,
        allow_reuse: bool = True,
        mini_batches_per_task: MiniBatchesPerTask = AUTO,
    ) -> None:
        if not isinstance(parallel_run_config, ParallelRunConfig):
            raise TypeError(
                "parallel_run_config must be a ParallelRunConfig; load a saved one with "
                "ParallelRunConfig.load('name') or ParallelRunConfig.load_yaml(None, path)."
            )
        if not inputs:
            raise ValueError("inputs must name at least one FileDataset or TabularDataset.")
        if side_inputs:
            raise NotImplementedError(
                "side_inputs are not supported yet: pass the side input's path to the entry "
                "script through arguments, e.g. arguments=['--labels', '/data/labels.csv']."
            )
        self.name = name
        self.parallel_run_config = parallel_run_config
        self.inputs = list(inputs)
        self.output = None if output is None else str(output)
        self.arguments = check_arguments(list(arguments or []))
        self.allow_reuse = allow_reuse
        self.mini_batches_per_task = check_mini_batches_per_task(mini_batches_per_task)
        check_output(parallel_run_config, self.output)

    def run(
        self, resume: bool = True, progress_listener: ProgressListener | None = None
    ) -> ParallelRunResult:
        """Run the step (a subflow when called inside a flow) and return its result.

        Args:
            resume: Resume the output folder's earlier run of the same job; False starts over.
            progress_listener: Called in this process with a `ProgressSnapshot` when the
                mini-batches start, as each one finishes, and once more (`finished=True`)
                when dispatch ends; it must return quickly. Not called for a reused result.
                The command line's progress bar is one.

        Raises:
            ComputeTargetError: (a `ValueError`) before anything runs, when the config's
                `compute_target` names no usable cluster (no saved block of that name, a
                cluster class that cannot be imported).
            FileNotFoundError: before anything runs, when the entry script cannot be read.
        """
        start_embedded_api()
        config = self.parallel_run_config
        if is_task_runner_target(config.compute_target):
            # The calling flow's DaskTaskRunner cluster, shared with its other tasks.
            config = config.model_copy(
                update={"compute_target": calling_flow_scheduler_address()}
            )
        compute_target_for(
            config.compute_target, config.node_count, config.process_count_per_node,
            load_block=DaskCompute.load,
        )
        check_entry_script(config)
        with listening(progress_listener), riding_out_api_outages():
            state = parallel_run(
                config=config,
                inputs=self.inputs,
                output=self.output,
                arguments=self.arguments,
                name=self.name,
                resume=resume,
                allow_reuse=self.allow_reuse,
                mini_batches_per_task=self.mini_batches_per_task,
                return_state=True,
            )
        return result_of(state)


def result_of(state) -> ParallelRunResult:
    """The ParallelRunResult carried by a parallel_run flow run's final state."""
    data = state.result(raise_on_failure=False)
    if isinstance(data, ParallelRunResult):
        return data
    if isinstance(data, BaseException):
        raise data
    raise RuntimeError(f"the parallel_run flow ended {state.type.value} without a result.")
