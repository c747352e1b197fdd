"""What an entry-script process says when the user's script fails, one constructor per case.

Each builds the protocol reply (`StartFailed`, `RunReply`, `ShutdownReply`) with a message that
names what failed and what to do, and the script's own traceback: `script_traceback` takes
this package's frames and importlib's out, so that the user sees what they wrote. The worker
adds where it happened (mini-batch, attempt, process, node) in `results.py`.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

from prefect_parallelrun.execute.protocol import RunReply, ShutdownReply, StartFailed

_EXECUTE_DIR = os.path.dirname(os.path.abspath(__file__))


class ScriptLoadError(Exception):
    """The entry script cannot be used as it is (missing file, no run() function)."""


def start_failed(exc: BaseException, step: str) -> StartFailed:
    """`step` ("Importing the entry script", "init()") raised `exc`: the process cannot serve."""
    if isinstance(exc, ScriptLoadError):
        cause = exc.__cause__
        cause_traceback = None if cause is None else full_traceback(cause)
        return StartFailed(error=str(exc), traceback=cause_traceback)
    error = f"{step} raised {type(exc).__name__}: {exc}"
    return StartFailed(error=error, traceback=script_traceback(exc))


def read_failed(exc: Exception) -> RunReply:
    """The mini-batch reader could not open the mini-batch's input."""
    error = (
        f"Reading the mini-batch's input failed: {type(exc).__name__}: {exc}. Check "
        "that its files exist and can be read from this node."
    )
    return RunReply(0, 0, error=error, traceback=full_traceback(exc))


def run_raised(exc: BaseException, items: int) -> RunReply:
    """run() raised (or called sys.exit) on a mini-batch of `items` items."""
    if isinstance(exc, MemoryError):
        error = (
            "run() ran out of memory (MemoryError). Make mini_batch_size smaller, run fewer "
            "processes per node (process_count_per_node), or give the workers more memory; "
            "the attempt is retried (run_max_try)."
        )
    else:
        error = (
            f"run() raised {type(exc).__name__}: {exc}. Fix the script where the traceback "
            "points; an error that comes and goes is retried (run_max_try)."
        )
    return RunReply(items, 0, error=error, traceback=script_traceback(exc))


def wrong_result(result: Any, items: int) -> RunReply:
    """run() returned something that is not a list, tuple or DataFrame."""
    kind = type(result)
    returned = "None" if result is None else f"a {kind.__module__}.{kind.__qualname__}"
    hint = " Is a `return` statement missing?" if result is None else ""
    error = (
        f"run() returned {returned}; it must return a list, tuple or pandas DataFrame with one "
        f"result per item (this mini-batch has {items} item{'' if items == 1 else 's'}).{hint}"
    )
    return RunReply(items, 0, error=error)


def count_warnings(count: int, items: int) -> list[str]:
    """What a user should know when run() returned `count` results for `items` items."""
    if count > items:
        return [
            f"run() returned {count} results for {items} items; the last {count - items} "
            "were dropped (one result per item is kept)."
        ]
    if count < items:
        return [
            f"run() returned {count} results for {items} items; the other {items - count} "
            "items count as failed (a short result is not retried)."
        ]
    return []


def staging_failed(exc: Exception, items: int, warnings: list[str]) -> RunReply:
    """The append_row rows of a good result could not be written."""
    error = (
        f"Writing the result rows failed: {type(exc).__name__}: {exc}. Check that "
        "the output folder can be written from this node."
    )
    return RunReply(items, 0, error=error, traceback=full_traceback(exc), warnings=warnings)


def unexpected(exc: Exception) -> RunReply:
    """Anything else that went wrong around run(), with the whole traceback."""
    return RunReply(0, 0, error=f"{type(exc).__name__}: {exc}", traceback=full_traceback(exc))


def shutdown_raised(exc: BaseException) -> ShutdownReply:
    """The script's shutdown() raised (or called sys.exit)."""
    return ShutdownReply(f"shutdown() raised {type(exc).__name__}: {exc}", script_traceback(exc))


def script_traceback(exc: BaseException) -> str:
    """The traceback without this package's frames nor importlib's: what the user wrote."""
    report = traceback.TracebackException.from_exception(exc)
    frames = [frame for frame in report.stack if not _is_ours(frame.filename)]
    if frames:
        report.stack = traceback.StackSummary.from_list(frames)
    return "".join(report.format())


def full_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _is_ours(filename: str) -> bool:
    return filename.startswith(_EXECUTE_DIR) or filename.startswith("<frozen")
