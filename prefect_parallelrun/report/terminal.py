"""What the command line shows: live progress, the closing summary, an output folder's status.

Progress comes from the job in the same process, as a progress listener (`ProgressSnapshot`):
on a terminal a `rich` progress bar, elsewhere (a pipe, a CI log) the job_progress_overview.txt
line every few seconds. While the job runs, the terminal shows the job's own warnings and
errors, one line each, and none of the libraries' log lines (they stay in the flow run's log).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from rich import box
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from prefect_parallelrun.report.folder_status import FolderStatus
from prefect_parallelrun.report.progress import ProgressSnapshot
from prefect_parallelrun.report.result import ParallelRunResult

PLAIN_INTERVAL_SECONDS = 5.0
PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
SHOWN_FAILURES = 20


class TerminalProgress:
    """A progress listener for the command line; a context manager around the job.

    With `live` (stdout is a terminal) it draws a progress bar: mini-batches done of all,
    failed, mini-batches per second, time left. Otherwise it prints the progress line (as in
    job_progress_overview.txt) when the job starts, every `interval` seconds as mini-batches
    finish, and when it ends.
    """

    def __init__(
        self, console: Console, name: str, live: bool, interval: float = PLAIN_INTERVAL_SECONDS
    ) -> None:
        self._console = console
        self._name = name
        self._live = live
        self._interval = interval
        self._lock = threading.Lock()
        self._printed: str | None = None
        self._printed_at = float("-inf")
        self._last: ProgressSnapshot | None = None
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> TerminalProgress:
        if self._live:
            self._bar = Progress(
                _Spinner(),
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=None),
                TextColumn("{task.fields[figures]}"),
                TimeElapsedColumn(),
                console=self._console,
                expand=True,
                # Lines written to stderr go above the bar, when stderr is this terminal too.
                redirect_stderr=sys.stderr.isatty(),
            )
            self._task = self._bar.add_task(
                "starting Prefect and the Dask cluster", total=None, figures="", done=False
            )
            self._bar.start()
        return self

    def __call__(self, snapshot: ProgressSnapshot) -> None:
        with self._lock:
            self._last = snapshot
            if self._bar is not None and self._task is not None:
                self._bar.update(
                    self._task, description=self._name, total=snapshot.total,
                    completed=snapshot.processed, figures=_figures(snapshot),
                    done=snapshot.finished,
                )
            elif snapshot.finished or time.monotonic() - self._printed_at >= self._interval:
                self._print_line(snapshot)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            if self._bar is not None:
                if self._last is None and self._task is not None:
                    self._bar.remove_task(self._task)  # no mini-batch ran: nothing to show
                self._bar.stop()
            elif self._last is not None:
                self._print_line(self._last)

    def _print_line(self, snapshot: ProgressSnapshot) -> None:
        line = snapshot.line()
        if line == self._printed:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._console.print(f"[{stamp}] {line}", markup=False, highlight=False, soft_wrap=True)
        self._printed, self._printed_at = line, time.monotonic()


def _figures(snapshot: ProgressSnapshot) -> str:
    """`183/400 mini-batches • 2 failed • 12.5/s • 0:00:17 left`, as rich markup."""
    failed = f"[red]{snapshot.failed} failed[/]" if snapshot.failed else "[dim]0 failed[/]"
    speed = snapshot.per_second
    left = snapshot.seconds_left
    if snapshot.finished:
        left_text = "done in"
    elif left is None:
        left_text = "[dim]-:--:-- left[/]"
    else:
        left_text = f"{_clock(left)} left"
    rate = f"{speed:.1f}/s" if speed is not None else "[dim]-/s[/]"
    return (
        f"[green]{snapshot.processed}/{snapshot.total}[/] mini-batches • {failed} • {rate} • "
        f"{left_text}"
    )


class _Spinner(SpinnerColumn):
    """A spinner while the job runs; a dot once dispatch ended, complete or not."""

    def render(self, task: Task) -> RenderableType:
        return Text("•", style="dim") if task.fields.get("done") else super().render(task)


def print_summary(console: Console, result: ParallelRunResult) -> None:
    """The closing summary: the result's message, a table of the figures, the paths."""
    colour = "green" if result.succeeded else "red"
    console.print()
    console.print(
        f"[bold {colour}]{result.status}[/]: {result.message}", highlight=False, soft_wrap=True
    )
    table = Table(
        box=box.SIMPLE_HEAD, title=f"[bold {colour}]{result.status}[/] in "
        f"{_duration(result.seconds)}", title_justify="left",
    )
    table.add_column("")
    for column in ("succeeded", "failed", "all"):
        table.add_column(column, justify="right")
    table.add_row(
        "mini-batches", str(result.succeeded_mini_batches),
        _failed(result.failed_mini_batches), str(result.total_mini_batches),
    )
    table.add_row(
        "items", str(result.succeeded_items), _failed(result.failed_items),
        str(result.total_items),
    )
    console.print(table)
    _print_path(console, "output file:", result.output_file or "none (summary_only)")
    _print_path(console, "logs:", result.logs_dir)


def print_folder_status(console: Console, status: FolderStatus) -> None:
    """`status`: the state of the job in an output folder, then its failed mini-batches
    (on a console that does not wrap lines, so that paths and errors stay whole)."""
    _print_path(console, "output folder:", status.folder)
    if status.state == "running" and status.holder is not None:
        console.print("[bold yellow]Running[/]: " + status.holder.describe(), highlight=False)
    elif status.state == "stopped" and status.holder is not None:
        console.print(
            "[bold red]Stopped[/]: the run that held this folder is gone without finishing ("
            + status.holder.describe() + "). Run the same command again to resume it.",
            highlight=False,
        )
    elif status.state == "not finished":
        console.print(
            "[bold red]Not finished[/]: no run holds this folder and none wrote a result. "
            "Run the same command again to resume it.", highlight=False,
        )
    for number, line in enumerate(status.result_lines):
        if number == 0:
            colour = "green" if status.succeeded else "red"
            state, _, reason = line.partition(":")
            console.print(f"[bold {colour}]{state}[/]:{reason}", highlight=False)
        else:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if status.state != "finished":
        console.print(
            f"committed so far: {_count(status.committed_mini_batches, 'mini-batch')} "
            f"({_count(status.committed_items, 'item')} succeeded)", highlight=False,
        )
        if status.progress_line:
            console.print(
                f"last progress: {status.progress_line}", markup=False, highlight=False,
                soft_wrap=True,
            )
    _print_failures(console, status)


def _print_failures(console: Console, status: FolderStatus) -> None:
    failed = status.failed_mini_batches
    if not failed:
        return
    still = " (some may still be retried)" if status.state == "running" else ""
    console.print(
        f"\n[bold red]{_count(len(failed), 'mini-batch')} without a committed result[/]"
        f"{still}, with the last error of each:", highlight=False,
    )
    for mini_batch in failed[:SHOWN_FAILURES]:
        console.print(
            f"  mini-batch {mini_batch.index} ({_count(mini_batch.attempts, 'attempt')}, "
            f"{mini_batch.status}): {mini_batch.last_error or 'no error recorded'}",
            markup=False, highlight=False,
        )
    if len(failed) > SHOWN_FAILURES:
        console.print(f"  ... and {len(failed) - SHOWN_FAILURES} more.", highlight=False)
    console.print(
        f"Tracebacks: {status.folder}/logs/job_error.txt; per attempt: "
        f"{status.folder}/logs/sys/job_report/processed_mini-batches.csv",
        markup=False, highlight=False, soft_wrap=True,
    )


def _count(count: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("h") else "s")
    return f"{count} {noun if count == 1 else plural}"


def _failed(count: int) -> str:
    return f"[red]{count}[/]" if count else "0"


def _print_path(console: Console, label: str, path: str) -> None:
    # soft_wrap: a long path stays one line that a terminal can copy whole.
    console.print(f"{label:<12} {path}", markup=False, highlight=False, soft_wrap=True)


def _clock(seconds: float) -> str:
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else _clock(seconds)


@contextmanager
def job_log_on_terminal(verbose: bool) -> Iterator[None]:
    """While the job runs, show only its own warnings and errors on the terminal.

    Prefect's console handlers (which print every task run's state, the embedded server's
    start and the libraries' warnings) are set aside and given back afterwards; the flow
    run's log in Prefect keeps everything. With `verbose`, nothing changes.
    """
    if verbose:
        yield
        return
    from prefect.logging.handlers import PrefectConsoleHandler

    set_aside = [
        (logger, handler)
        for logger in (logging.getLogger(), logging.getLogger("uvicorn"),
                       logging.getLogger("fastapi"))
        for handler in list(logger.handlers)
        if isinstance(handler, PrefectConsoleHandler)
    ]
    for logger, handler in set_aside:
        logger.removeHandler(handler)
    own = _JobLogHandler()
    logging.getLogger().addHandler(own)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(own)
        for logger, handler in set_aside:
            logger.addHandler(handler)


def quiet_embedded_server() -> None:
    """Keep Prefect's own INFO lines (its embedded API server starting and stopping) off the
    terminal for the rest of this process: the server is stopped at interpreter exit, after
    the command has returned. Only records of the `prefect` logger itself are dropped; flow
    and task runs log on child loggers, which this does not touch."""
    prefect_logger = logging.getLogger("prefect")
    if not any(isinstance(known, _BelowWarning) for known in prefect_logger.filters):
        prefect_logger.addFilter(_BelowWarning())


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


class _JobLogHandler(logging.Handler):
    """Warnings and errors logged by this package's code, one line each, on stderr.

    The stream is looked up at each line, so that under a live progress bar the line goes
    through rich's redirection and appears above the bar.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.pathname.startswith(PACKAGE_DIR)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().replace("\n", " ")
            print(f"{record.levelname.lower()}: {message}", file=sys.stderr)
        except Exception:
            self.handleError(record)
