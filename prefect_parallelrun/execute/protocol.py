"""The messages between a Dask worker and one of its entry-script processes.

Each goes as one pickle over a pipe (`multiprocessing.connection.Connection`), never through
the process's stdout or stderr, which belong to the user's script. A process's life:

    worker -> process   ProcessStart            once, right after the process is spawned
    process -> worker   Ready | StartFailed     after importing the script and calling init()
    worker -> process   RunRequest              one per mini-batch
    process -> worker   RunStarted, RunReply    the mini-batch was read; run() has returned
    worker -> process   ShutdownRequest         when the job drains normally
    process -> worker   ShutdownReply           after shutdown(); then the process exits
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect_parallelrun.execute.process_spec import ProcessSpec

LogRecordTuple = tuple[str, str]
"""A record the script logged during run(): its level name and its formatted message."""


@dataclass(frozen=True)
class ProcessStart:
    """Who the process is and what it runs.

    Args:
        spec: The job's process settings.
        node: The worker's name in the job.
        process: The process slot's name.
        scratch_dir: A private folder for the mini-batch reader's temporary files.
    """

    spec: ProcessSpec
    node: str
    process: str
    scratch_dir: str


@dataclass(frozen=True)
class Ready:
    """The script is imported and its init() has returned."""


@dataclass(frozen=True)
class StartFailed:
    """The script could not be imported, or its init() raised; the process then exits.

    Args:
        error: The message for the user.
        traceback: The script's traceback; None when there is none to show.
    """

    error: str
    traceback: str | None


@dataclass(frozen=True)
class RunRequest:
    """Run one mini-batch.

    Args:
        mini_batch: The mini-batch descriptor, given to the mini-batch reader.
        attempt: The attempt's number, which names the staged rows.
    """

    mini_batch: Any
    attempt: int


@dataclass(frozen=True)
class RunStarted:
    """The mini-batch was read and run() is being called: from now on `items` is known.

    Args:
        items: The mini-batch's items, as read.
    """

    items: int


@dataclass(frozen=True)
class RunReply:
    """How run() went.

    Args:
        items: The mini-batch's items (0 when it could not be read).
        succeeded_items: Items with a result.
        error: What went wrong; None when run() returned a list, tuple or DataFrame.
        traceback: The traceback behind `error`, if any.
        staged_rows: Where the result's append_row rows were staged; None without any.
        log_records: What the script logged during run() (capped).
        warnings: What the user should know about a good result (a short one, say).
    """

    items: int
    succeeded_items: int
    error: str | None = None
    traceback: str | None = None
    staged_rows: str | None = None
    log_records: list[LogRecordTuple] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ShutdownRequest:
    """Call the script's shutdown(), reply, and exit."""


@dataclass(frozen=True)
class ShutdownReply:
    """shutdown() returned, raised, or the script has none.

    Args:
        error: What shutdown() raised; None when it returned or there is none.
        traceback: The script's traceback, when it raised.
    """

    error: str | None
    traceback: str | None
