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


@dataclass(frozen=True)
class ProcessStart:
    """Who the process is and what it runs."""

    spec: ProcessSpec
    node: str
    process: str
    scratch_dir: str


@dataclass(frozen=True)
class Ready:
    """The script is imported and its init() has returned."""


@dataclass(frozen=True)
class StartFailed:
    """The script could not be imported, or its init() raised; the process then exits."""

    error: str
    traceback: str | None


@dataclass(frozen=True)
class RunRequest:
    mini_batch: Any
    attempt: int


@dataclass(frozen=True)
class RunStarted:
    """The mini-batch was read and run() is being called: from now on `items` is known."""

    items: int


@dataclass(frozen=True)
class RunReply:
    """How run() went. `error` is None when it returned a list, tuple or DataFrame."""

    items: int
    succeeded_items: int
    error: str | None = None
    traceback: str | None = None
    staged_rows: str | None = None
    log_records: list[LogRecordTuple] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ShutdownRequest:
    pass


@dataclass(frozen=True)
class ShutdownReply:
    """shutdown() returned (`error` None), raised, or the script has none."""

    error: str | None
    traceback: str | None
