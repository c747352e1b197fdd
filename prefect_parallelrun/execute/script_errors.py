"""What an entry-script process says when the user's script fails, one constructor per case.

Each builds the protocol reply (`StartFailed`, `RunReply`, `ShutdownReply`) with a message that
names what failed and what to do, and the script's own traceback: `script_traceback` takes
this package's frames and importlib's out, so that the user sees what they wrote. A process
that cannot say why it did not start (it could not be spawned, it died, it outlived
`init_timeout`) gets its `StartFailed` from the worker, built here too. The worker adds where
it happened (mini-batch, attempt, process, node) in `attempt_record.py`.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

from prefect_parallelrun.execute.protocol import RunReply, ShutdownReply, StartFailed

_EXECUTE_DIR = os.path.dirname(os.path.abspath(__file__))


class ScriptLoadError(Exception):
    """The entry script cannot be used as it is (missing file, no run() function).

    Its message is the whole error the user reads; its `__cause__`, when set, is the error
    behind it (the mini-batch reader's import error).
    """


def start_failed(exc: BaseException, step: str) -> StartFailed:
    """`step` raised `exc`: the process cannot serve.

    Args:
        exc: What was raised; a `ScriptLoadError` is told as it is.
        step: What was being done: "Importing the entry script" or "init()".

    Returns:
        The failure the process sends before it exits.
    """
    if isinstance(exc, ScriptLoadError):
        cause = exc.__cause__
        cause_traceback = None if cause is None else full_traceback(cause)
        return StartFailed(error=str(exc), traceback=cause_traceback)
    error = f"{step} raised {type(exc).__name__}: {exc}"
    return StartFailed(error=error, traceback=script_traceback(exc))


def could_not_spawn(exc: OSError) -> StartFailed:
    """The worker could not start the process at all (no memory, too many processes...).

    Args:
        exc: What `EntryScriptProcess.spawn` raised.

    Returns:
        The failure, as if the process had said it.
    """
    return StartFailed(f"The process could not be started: {exc}.", None)


def init_timed_out(timeout: float) -> StartFailed:
    """Importing the script and init() outlived `init_timeout`.

    Args:
        timeout: The `init_timeout`, in seconds.

    Returns:
        The failure, as if the process had said it.
    """
    return StartFailed(f"init() did not return within init_timeout={timeout:g} seconds.", None)


def died_while_starting(exit_description: str) -> StartFailed:
    """The process ended before it said it was ready.

    Args:
        exit_description: How the process ended (`describe_exit`).

    Returns:
        The failure, as if the process had said it.
    """
    return StartFailed(f"The process died while starting ({exit_description}).", None)


def read_failed(exc: Exception) -> RunReply:
    """The mini-batch reader could not open the mini-batch's input.

    Args:
        exc: What the reader raised.

    Returns:
        A reply with no items (none were read).
    """
    error = (
        f"Reading the mini-batch's input failed: {type(exc).__name__}: "
        f"{str(exc).rstrip().rstrip('.')}. Check "
        "that its files exist and can be read from this node."
    )
    return RunReply(0, 0, error=error, traceback=full_traceback(exc))


def run_raised(exc: BaseException, items: int) -> RunReply:
    """run() raised (or called sys.exit); a `MemoryError` gets advice of its own.

    Args:
        exc: What run() raised.
        items: The mini-batch's items, all of which failed.

    Returns:
        The reply, with the script's traceback.
    """
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
    """run() returned something that is not a list, tuple or DataFrame.

    Args:
        result: What run() returned.
        items: The mini-batch's items, all of which failed.

    Returns:
        The reply, saying what was returned (and that a `return` may be missing, for None).
    """
    kind = type(result)
    returned = "None" if result is None else f"a {kind.__module__}.{kind.__qualname__}"
    hint = " Is a `return` statement missing?" if result is None else ""
    error = (
        f"run() returned {returned}; it must return a list, tuple or pandas DataFrame with one "
        f"result per item (this mini-batch has {items} item{'' if items == 1 else 's'}).{hint}"
    )
    return RunReply(items, 0, error=error)


def count_warnings(count: int, items: int) -> list[str]:
    """What a user should know about the number of results run() returned.

    Args:
        count: The results run() returned.
        items: The mini-batch's items.

    Returns:
        One warning when `count` differs from `items`, else none.
    """
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
    """The append_row rows of a good result could not be written.

    Args:
        exc: What staging the rows raised.
        items: The mini-batch's items, all of which failed.
        warnings: The result's warnings so far, kept.

    Returns:
        The reply.
    """
    error = (
        f"Writing the result rows failed: {type(exc).__name__}: {exc}. Check that "
        "the output folder can be written from this node."
    )
    return RunReply(items, 0, error=error, traceback=full_traceback(exc), warnings=warnings)


def unexpected(exc: Exception) -> RunReply:
    """Anything else that went wrong around run(), with the whole traceback.

    Args:
        exc: What was raised.

    Returns:
        A reply with no items.
    """
    return RunReply(0, 0, error=f"{type(exc).__name__}: {exc}", traceback=full_traceback(exc))


def shutdown_raised(exc: BaseException) -> ShutdownReply:
    """The script's shutdown() raised (or called sys.exit).

    Args:
        exc: What shutdown() raised.

    Returns:
        The reply, with the script's traceback.
    """
    return ShutdownReply(f"shutdown() raised {type(exc).__name__}: {exc}", script_traceback(exc))


def script_traceback(exc: BaseException) -> str:
    """The traceback without this package's frames nor importlib's: what the user wrote.

    Args:
        exc: The exception.

    Returns:
        The formatted traceback; the whole one when no frame would be left.
    """
    report = traceback.TracebackException.from_exception(exc)
    frames = [frame for frame in report.stack if not _is_ours(frame.filename)]
    if frames:
        report.stack = traceback.StackSummary.from_list(frames)
    return "".join(report.format())


def full_traceback(exc: BaseException) -> str:
    """The whole traceback, for errors of this package rather than of the script.

    Args:
        exc: The exception.

    Returns:
        The formatted traceback, with its causes.
    """
    return "".join(traceback.format_exception(exc))


def _is_ours(filename: str) -> bool:
    return filename.startswith(_EXECUTE_DIR) or filename.startswith("<frozen")
