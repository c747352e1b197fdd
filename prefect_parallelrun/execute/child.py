"""An entry-script process: `python -m prefect_parallelrun.execute.child`.

Started by a worker's `ProcessSlot`, it imports the user's script once, calls `init()` once,
then serves mini-batches one at a time until the worker asks it to shut down or goes away.
The protocol is in `protocol.py`; stdout and stderr are the user's (redirected to files).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import inspect
import os
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from multiprocessing.connection import Connection
from typing import Any

from prefect_parallelrun.execute.entry_script import (
    EntryScript,
    MiniBatchContext,
    RunLogCollector,
    configure_process,
)
from prefect_parallelrun.execute.protocol import (
    ProcessStart,
    Ready,
    RunReply,
    RunRequest,
    RunStarted,
    ShutdownReply,
    ShutdownRequest,
    StartFailed,
)

_EXECUTE_DIR = os.path.dirname(os.path.abspath(__file__))
_ORPHAN_CHECK_SECONDS = 1.0

MiniBatchReader = Callable[[Any, str], AbstractContextManager[Any]]


class ScriptLoadError(Exception):
    """The entry script cannot be used as it is (missing file, no run() function)."""


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _exit_when_orphaned(args.parent_pid)
    requests = Connection(args.requests_fd, writable=False)
    replies = Connection(args.replies_fd, readable=False)
    script = _start(requests.recv(), replies)
    if script is None:
        return 1
    while True:
        try:
            message = requests.recv()
        except EOFError:
            return 0
        if isinstance(message, ShutdownRequest):
            replies.send(script.shutdown())
            return 0
        replies.send(script.run_mini_batch(message, replies))


def _start(start: ProcessStart, replies: Connection) -> LoadedScript | None:
    """Import the script and call its init(); say how it went."""
    try:
        script = LoadedScript.load(start)
    except ScriptLoadError as exc:
        cause = exc.__cause__
        replies.send(StartFailed(error=str(exc), traceback=cause and _full(cause)))
        return None
    except (Exception, SystemExit) as exc:
        error = f"Importing the entry script raised {type(exc).__name__}: {exc}"
        replies.send(StartFailed(error=error, traceback=_script_traceback(exc)))
        return None
    try:
        script.init()
    except (Exception, SystemExit) as exc:
        error = f"init() raised {type(exc).__name__}: {exc}"
        replies.send(StartFailed(error=error, traceback=_script_traceback(exc)))
        return None
    replies.send(Ready())
    return script


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="prefect_parallelrun.execute.child")
    parser.add_argument("--job-id", required=True, help="Shown by ps; not used otherwise.")
    parser.add_argument("--process", required=True, help="Shown by ps; not used otherwise.")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--requests-fd", type=int, required=True)
    parser.add_argument("--replies-fd", type=int, required=True)
    return parser.parse_args(argv)


def _exit_when_orphaned(parent_pid: int) -> None:
    # A worker killed outright cannot stop its processes; each one notices that it has been
    # re-parented and kills its own process group (itself and whatever the script started).
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_ORPHAN_CHECK_SECONDS)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="exit-when-orphaned", daemon=True).start()


class LoadedScript:
    """The user's script, imported and initialised in this process."""

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
        self._stage_rows = _row_stager() if start.spec.output_action == "append_row" else None

    @classmethod
    def load(cls, start: ProcessStart) -> LoadedScript:
        """Prepare the process as the script expects it and import the script."""
        spec = start.spec
        os.environ.update(spec.environment_variables)
        if spec.output_dir:
            os.environ["AZUREML_BI_OUTPUT_PATH"] = spec.output_dir
        sys.argv = [spec.entry_script, *spec.arguments]
        sys.path.insert(0, spec.import_root)
        _install_azureml_alias()
        collector = configure_process(
            start.node, start.process, spec.logs_dir, spec.output_dir, spec.logging_level
        )
        read = _import_reader(spec.mini_batch_reader)
        return cls(start, _import_script(spec.entry_script), read, collector)

    def init(self) -> None:
        init = getattr(self._module, "init", None)
        if callable(init):
            init()

    def run_mini_batch(self, request: RunRequest, replies: Connection) -> RunReply:
        """Read the mini-batch, call run() on it, judge and stage the result."""
        self._collector.start()
        try:
            reply = self._run_mini_batch(request, replies)
        except Exception as exc:
            reply = RunReply(0, 0, error=f"{type(exc).__name__}: {exc}", traceback=_full(exc))
        return dataclasses.replace(reply, log_records=self._collector.take())

    def _run_mini_batch(self, request: RunRequest, replies: Connection) -> RunReply:
        mini_batch = request.mini_batch
        with ExitStack() as stack:
            try:
                data = stack.enter_context(self._read(mini_batch, self._start.scratch_dir))
            except Exception as exc:
                error = (
                    f"Reading the mini-batch's input failed: {type(exc).__name__}: {exc}. Check "
                    "that its files exist and can be read from this node."
                )
                return RunReply(0, 0, error=error, traceback=_full(exc))
            items = len(data)
            replies.send(RunStarted(items))
            try:
                result = self._call_run(data, mini_batch)
            except (Exception, SystemExit) as exc:
                return RunReply(
                    items, 0, error=_run_error(exc), traceback=_script_traceback(exc)
                )
            return self._judge(result, items, mini_batch, request.attempt)

    def _call_run(self, data: Any, mini_batch: Any) -> Any:
        if not self._run_takes_context:
            return self._run(data)
        context = MiniBatchContext(
            partition_key_value=dict(getattr(mini_batch, "partition_key_value", None) or {}),
            minibatch_index=mini_batch.index,
        )
        return self._run(data, context)

    def _judge(self, result: Any, items: int, mini_batch: Any, attempt: int) -> RunReply:
        if not _is_result(result):
            return RunReply(items, 0, error=_wrong_result_message(result, items))
        count = len(result)
        warnings = []
        if count > items:
            warnings.append(
                f"run() returned {count} results for {items} items; the last {count - items} "
                "were dropped (one result per item is kept)."
            )
        elif count < items:
            warnings.append(
                f"run() returned {count} results for {items} items; the other {items - count} "
                "items count as failed (a short result is not retried)."
            )
        staged = None
        if self._stage_rows is not None:
            try:
                staged = self._stage_rows(
                    self._start.spec.staging_dir, mini_batch.id, attempt, result, items
                )
            except Exception as exc:
                error = (
                    f"Writing the result rows failed: {type(exc).__name__}: {exc}. Check that "
                    "the output folder can be written from this node."
                )
                return RunReply(items, 0, error=error, traceback=_full(exc), warnings=warnings)
        return RunReply(items, min(count, items), staged_rows=staged, warnings=warnings)

    def shutdown(self) -> ShutdownReply:
        shutdown = getattr(self._module, "shutdown", None)
        if not callable(shutdown):
            return ShutdownReply(None, None)
        try:
            shutdown()
        except (Exception, SystemExit) as exc:
            return ShutdownReply(
                f"shutdown() raised {type(exc).__name__}: {exc}", _script_traceback(exc)
            )
        return ShutdownReply(None, None)


def _install_azureml_alias() -> None:
    # `from azureml_user.parallel_run import EntryScript` is how Azure ML scripts get it.
    package = types.ModuleType("azureml_user")
    package.__path__ = []
    module = types.ModuleType("azureml_user.parallel_run")
    module.EntryScript = EntryScript  # type: ignore[attr-defined]
    package.parallel_run = module  # type: ignore[attr-defined]
    sys.modules.setdefault("azureml_user", package)
    sys.modules.setdefault("azureml_user.parallel_run", module)


def _import_script(path: str) -> types.ModuleType:
    if not os.path.isfile(path):
        raise ScriptLoadError(
            f"The entry script {path} does not exist on this node. It must be at the same path "
            "on every worker (the same machine, or a shared filesystem)."
        )
    name = os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ScriptLoadError(f"The entry script {path} cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ScriptLoadError(
            f"The entry script {path} has no run() function; define run(mini_batch)."
        )
    return module


def _import_reader(dotted: str) -> MiniBatchReader:
    module_name, _, attribute = dotted.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:
        raise ScriptLoadError(
            f"The mini-batch reader {dotted} cannot be imported ({type(exc).__name__}: {exc}); "
            "the workers' Python environment may lack a package."
        ) from exc


def _row_stager() -> Callable[[str, str, int, Any, int], str]:
    from prefect_parallelrun.commit.rows import format_rows, stage_rows

    def stage(staging_dir: str, mini_batch_id: str, attempt: int, result: Any, items: int) -> str:
        return stage_rows(staging_dir, mini_batch_id, attempt, format_rows(result, limit=items))

    return stage


def _takes_two_arguments(run: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _is_result(result: Any) -> bool:
    if isinstance(result, (list, tuple)):
        return True
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(result, pandas.DataFrame)


def _wrong_result_message(result: Any, items: int) -> str:
    kind = type(result)
    returned = "None" if result is None else f"a {kind.__module__}.{kind.__qualname__}"
    hint = " Is a `return` statement missing?" if result is None else ""
    return (
        f"run() returned {returned}; it must return a list, tuple or pandas DataFrame with one "
        f"result per item (this mini-batch has {items} item{'' if items == 1 else 's'}).{hint}"
    )


def _run_error(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return (
            "run() ran out of memory (MemoryError). Make mini_batch_size smaller, run fewer "
            "processes per node (process_count_per_node), or give the workers more memory; "
            "the attempt is retried (run_max_try)."
        )
    return (
        f"run() raised {type(exc).__name__}: {exc}. Fix the script where the traceback "
        "points; an error that comes and goes is retried (run_max_try)."
    )


def _script_traceback(exc: BaseException) -> str:
    """The traceback without this module's frames nor importlib's: what the user wrote."""
    report = traceback.TracebackException.from_exception(exc)
    frames = [frame for frame in report.stack if not _is_ours(frame.filename)]
    if frames:
        report.stack = traceback.StackSummary.from_list(frames)
    return "".join(report.format())


def _full(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _is_ours(filename: str) -> bool:
    return filename.startswith(_EXECUTE_DIR) or filename.startswith("<frozen")


if __name__ == "__main__":
    sys.exit(main())
