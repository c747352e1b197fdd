"""`LoadedScript`: the user's entry script, imported and initialised in this process.

Loading prepares the process as a script written for Azure ML expects it (environment,
`sys.argv`, `sys.path`, the `azureml_user.parallel_run` alias, the `EntryScript` logger), then
imports the script and the mini-batch reader. Each mini-batch is read, given to run(), its
result checked (one result per item) and, for append_row, staged as rows for the commit step.
Importing the script and the reader is in `script_import.py`; what the process says when any of
it fails, in `script_errors.py`.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import types
from collections.abc import Callable
from contextlib import ExitStack
from multiprocessing.connection import Connection
from typing import Any

from prefect_parallelrun.execute import script_errors
from prefect_parallelrun.execute.entry_script import (
    MiniBatchContext,
    RunLogCollector,
    configure_process,
)
from prefect_parallelrun.execute.protocol import (
    ProcessStart,
    RunReply,
    RunRequest,
    RunStarted,
    ShutdownReply,
)
from prefect_parallelrun.execute.script_import import (
    MiniBatchReader,
    import_reader,
    import_script,
    install_azureml_alias,
)


class LoadedScript:
    """The user's script, imported and initialised in this process.

    Made by `load`, once per process; then `init` once, `run_mini_batch` per mini-batch and
    `shutdown` at the end, each from the process's one main thread.

    Args:
        start: The process's start message (its spec, node and name, scratch folder).
        module: The imported script; it has a callable `run`.
        read: The mini-batch reader: a context manager giving run()'s input.
        collector: The collector of the records the script logs during each run().
    """

    def __init__(
        self,
        start: ProcessStart,
        module: types.ModuleType,
        read: MiniBatchReader,
        collector: RunLogCollector,
    ):
        self._start = start
        self._module = module
        self._read = read
        self._collector = collector
        self._run: Callable[..., Any] = module.run
        self._run_takes_context = _takes_two_arguments(self._run)

    @classmethod
    def load(cls, start: ProcessStart) -> LoadedScript:
        """Prepare the process as the script expects it and import the script.

        Sets the job's environment variables, `AZUREML_BI_OUTPUT_PATH`, `sys.argv`,
        `sys.path`, the `azureml_user.parallel_run` alias and the `EntryScript` logger (with
        the spec's caps on the records sent back), then imports the mini-batch reader and the
        script, which runs the script's top-level code.

        Args:
            start: The process's start message.

        Returns:
            The loaded script; its init() has not run yet.

        Raises:
            ScriptLoadError: The script is missing, cannot be imported as a module or has no
                run(), or the mini-batch reader cannot be imported.
            Exception: Whatever the script's top-level code raises (`SystemExit` included).
        """
        spec = start.spec
        os.environ.update(spec.environment_variables)
        if spec.output_dir:
            os.environ["AZUREML_BI_OUTPUT_PATH"] = spec.output_dir
        sys.argv = [spec.entry_script, *spec.arguments]
        sys.path.insert(0, spec.import_root)
        install_azureml_alias()
        collector = configure_process(
            start.node,
            start.process,
            spec.logs_dir,
            spec.output_dir,
            spec.logging_level,
            max_records_per_run=spec.max_log_records_per_run,
            max_message_chars=spec.max_log_message_chars,
        )
        read = import_reader(spec.mini_batch_reader)
        return cls(start, import_script(spec.entry_script), read, collector)

    def init(self) -> None:
        """Call the script's init(), when it has one.

        Raises:
            Exception: Whatever init() raises (`SystemExit` included).
        """
        init = getattr(self._module, "init", None)
        if callable(init):
            init()

    def run_mini_batch(self, request: RunRequest, replies: Connection) -> RunReply:
        """Read the mini-batch, call run() on it, check and stage the result.

        Sends `RunStarted` on `replies` once the mini-batch is read, so that the worker knows
        its item count even if run() never returns. Never raises: every failure (the reader,
        run(), a wrong result, staging) becomes the reply's `error`.

        Args:
            request: The mini-batch and the attempt number.
            replies: The pipe to the worker.

        Returns:
            How run() went, with the records logged meanwhile.
        """
        self._collector.start()
        try:
            reply = self._run_mini_batch(request, replies)
        except Exception as exc:
            reply = script_errors.unexpected(exc)
        return dataclasses.replace(reply, log_records=self._collector.take())

    def _run_mini_batch(self, request: RunRequest, replies: Connection) -> RunReply:
        mini_batch = request.mini_batch
        with ExitStack() as stack:
            try:
                data = stack.enter_context(self._read(mini_batch, self._start.scratch_dir))
            except Exception as exc:
                return script_errors.read_failed(exc)
            items = len(data)
            replies.send(RunStarted(items))
            try:
                result = self._call_run(data, mini_batch)
            except (Exception, SystemExit) as exc:
                return script_errors.run_raised(exc, items)
            return self._check(result, items, mini_batch, request.attempt)

    def _call_run(self, data: Any, mini_batch: Any) -> Any:
        if not self._run_takes_context:
            return self._run(data)
        context = MiniBatchContext(
            partition_key_value=dict(getattr(mini_batch, "partition_key_value", None) or {}),
            minibatch_index=mini_batch.index,
        )
        return self._run(data, context)

    def _check(self, result: Any, items: int, mini_batch: Any, attempt: int) -> RunReply:
        if not _is_result(result):
            return script_errors.wrong_result(result, items)
        count = len(result)
        warnings = script_errors.count_warnings(count, items)
        staged = None
        if self._start.spec.output_action == "append_row":
            try:
                staged = self._stage(mini_batch.id, attempt, result, items)
            except Exception as exc:
                return script_errors.staging_failed(exc, items, warnings)
        return RunReply(items, min(count, items), staged_rows=staged, warnings=warnings)

    def _stage(self, mini_batch_id: str, attempt: int, result: Any, items: int) -> str:
        # Imported here: the processes of a summary_only job need not load the commit stage.
        from prefect_parallelrun.commit.rows import format_rows, stage_rows

        staging_dir = self._start.spec.staging_dir
        assert staging_dir is not None  # ProcessSpec requires one for append_row
        return stage_rows(staging_dir, mini_batch_id, attempt, format_rows(result, limit=items))

    def shutdown(self) -> ShutdownReply:
        """Call the script's shutdown(), when it has one; never raises.

        Returns:
            The reply: its `error` says what shutdown() raised, None when it returned or the
            script has none.
        """
        shutdown = getattr(self._module, "shutdown", None)
        if not callable(shutdown):
            return ShutdownReply(None, None)
        try:
            shutdown()
        except (Exception, SystemExit) as exc:
            return script_errors.shutdown_raised(exc)
        return ShutdownReply(None, None)


def _takes_two_arguments(run: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _is_result(result: Any) -> bool:
    """Whether run() returned what it must: a list, tuple or pandas DataFrame."""
    if isinstance(result, (list, tuple)):
        return True
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(result, pandas.DataFrame)
