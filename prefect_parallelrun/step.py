"""`ParallelRunStep`: Azure ML's step object, run as the `parallel_run` Prefect flow.

This is the package's entry point for Python callers (the command line is `cli.py` beside
it); `ParallelRunResult`, what `run()` returns, is importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect.states import State

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
from prefect_parallelrun.dispatch.job_plan import plan_inputs, planned_before_the_flow
from prefect_parallelrun.dispatch.shared_cluster import (
    calling_flow_scheduler_address,
    is_task_runner_target,
)
from prefect_parallelrun.execute.compute import ComputeRequest, compute_target_for
from prefect_parallelrun.plan import Dataset
from prefect_parallelrun.report import ParallelRunResult, ProgressListener, listening
from prefect_parallelrun.settings import get_settings

__all__ = ["ParallelRunResult", "ParallelRunStep", "result_of"]


class ParallelRunStep:
    """Run an entry script over mini-batches of `inputs`, as Azure ML's ParallelRunStep does.

    Contract:

    - The inputs are split into mini-batches (docs/inputs.md): for a `FileDataset`, a list of
      local file paths; for a `TabularDataset`, a pandas DataFrame.
    - Every entry-script process (`node_count` x `process_count_per_node`) imports the script
      and calls its `init()` once, then `run(mini_batch)` for each mini-batch it is given,
      then `shutdown()` if the script has one.
    - `run()` must return a list, tuple or DataFrame with one element (row) per succeeded
      item; items it returns nothing for count as failed. With `output_action="append_row"`
      the rows are appended to the output file in mini-batch order, each mini-batch exactly
      once; with `summary_only` only the counts are kept.
    - On failure: a `run()` that raises, times out (`run_invocation_timeout`) or kills its
      process fails that attempt, which is retried up to `run_max_try` attempts in all; a
      mini-batch failing its last attempt fails with all its items. The job aborts when a
      threshold of the config is crossed (`error_threshold`, `allowed_failed_count`,
      `allowed_failed_percent`) or when `init()` cannot succeed; committed mini-batches are
      kept, and running the step again resumes with the others.

    `ParallelRunStep.run()` returns a `ParallelRunResult` whatever the job's outcome, and
    raises only for invalid arguments, settings or inputs, before any flow run starts. Called
    inside a `@flow`, the run is a subflow.

    Args:
        name: The step's name: the flow run's name and the logs folder's.
        parallel_run_config: The run configuration: entry script, mini-batch size,
            thresholds, compute.
        inputs: The datasets to split into mini-batches, in order; at least one.
        output: The output folder (a local path or fsspec URL); optional for summary_only.
        side_inputs: Not supported yet: must be empty.
        arguments: Arguments for the entry script, keyword style (`--name value`), seen in
            its `sys.argv`.
        allow_reuse: Return the stored result of an identical, successful earlier run
            instead of running again.
        mini_batches_per_task: Mini-batches per Prefect task run: a positive number, or
            "auto" (short mini-batches share a task run).

    Raises:
        TypeError: `parallel_run_config` is not a `ParallelRunConfig`.
        ValueError: No inputs; positional or reserved `arguments`; a bad
            `mini_batches_per_task`; append_row without an `output`.
        NotImplementedError: `side_inputs` were given.

    Example:
        ```python
        # scripts/score.py
        def init():
            global model
            model = load_model()

        def run(mini_batch):  # a list of file paths
            return [f"{path} {model.score(path)}" for path in mini_batch]
        ```

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

        The settings (`PREFECT_PARALLELRUN_*`, prefect.toml) are read first: an invalid one
        raises before anything starts. The inputs are then planned (listed and split into
        mini-batches), once: an input that cannot be planned raises before any flow run
        starts, and the flow run uses this plan.

        Args:
            resume: Resume the output folder's earlier run of the same job; False starts over.
            progress_listener: Called in this process with a `ProgressSnapshot` when the
                mini-batches start, as each one finishes, and once more (`finished=True`)
                when dispatch ends; it must return quickly. Not called for a reused result.
                The command line's progress bar is one.

        Returns:
            The job's result, failed or not: `status`, `message`, the counts, the output
            file and the logs folder.

        Raises:
            ValueError: before anything runs, when a setting is invalid; the message names
                its environment variable.
            ComputeTargetError: (a `ValueError`) before anything runs, when the config's
                `compute_target` names no usable cluster (no saved block of that name, a
                cluster class that cannot be imported).
            FileNotFoundError: before anything runs, when the entry script cannot be read.
            InputError: (a `ValueError`) before any flow run starts, when an input cannot be
                planned: a path that matches nothing (`InputNotFoundError`), a file that does
                not match its `partition_format` (`PartitionFormatError`), an unreadable or
                corrupt table (`InputReadError`, `CorruptInputError`); the message names the
                input and the fix.
        """
        settings = get_settings()
        start_embedded_api()
        config = self.parallel_run_config
        if is_task_runner_target(config.compute_target):
            # The calling flow's DaskTaskRunner cluster, shared with its other tasks.
            config = config.model_copy(
                update={"compute_target": calling_flow_scheduler_address()}
            )
        compute_target_for(ComputeRequest(
            config.compute_target, config.node_count, config.process_count_per_node,
            load_block=DaskCompute.load,
        ))
        check_entry_script(config)
        plan = plan_inputs(self.inputs, config)
        with (
            planned_before_the_flow(self.inputs, config, plan),
            listening(progress_listener),
            riding_out_api_outages(settings.api_client_max_retries),
        ):
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


def result_of(state: State) -> ParallelRunResult:
    """The `ParallelRunResult` carried by a `parallel_run` flow run's final state.

    Args:
        state: The flow run's final state (`parallel_run(..., return_state=True)`).

    Returns:
        The job's result, whether the flow run completed or failed.

    Raises:
        BaseException: The error the flow run ended on, when it ended without a result
            (an invalid argument or setting, a crash).
        RuntimeError: The state carries neither a result nor an error.
    """
    data = state.result(raise_on_failure=False)
    if isinstance(data, ParallelRunResult):
        return data
    if isinstance(data, BaseException):
        raise data
    raise RuntimeError(f"the parallel_run flow ended {state.type.value} without a result.")
