"""What the command line shows while a job runs: live progress and the job's own log lines.

The closing summary and an output folder's status are `terminal_summary.py`'s.

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
from rich.text import Text

from prefect_parallelrun.report.progress_listener import ProgressSnapshot
from prefect_parallelrun.report.terminal_summary import format_clock

PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


class TerminalProgress:
    """A progress listener for the command line; a context manager around the job.

    With `live` (stdout is a terminal) it draws a progress bar: mini-batches done of all,
    failed, mini-batches per second, time left. Otherwise it prints the progress line (as in
    job_progress_overview.txt) when the job starts, every `interval` seconds as mini-batches
    finish, and when it ends. Drawing never fails the job (a listener that raises is dropped
    by the job's progress reporter).

    Args:
        console: Where to draw or print.
        name: The step's name, shown beside the bar.
        live: Whether to draw a bar (stdout is a terminal) rather than print lines.
        interval: Seconds between two printed lines (the `terminal_interval_seconds`
            setting); unused with `live`.
    """

    def __init__(self, console: Console, name: str, live: bool, interval: float) -> None:
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
        left_text = f"{format_clock(left)} left"
    rate = f"{speed:.1f}/s" if speed is not None else "[dim]-/s[/]"
    return (
        f"[green]{snapshot.processed}/{snapshot.total}[/] mini-batches • {failed} • {rate} • "
        f"{left_text}"
    )


class _Spinner(SpinnerColumn):
    """A spinner while the job runs; a dot once dispatch ended, complete or not."""

    def render(self, task: Task) -> RenderableType:
        return Text("•", style="dim") if task.fields.get("done") else super().render(task)


@contextmanager
def job_log_on_terminal(verbose: bool) -> Iterator[None]:
    """While the job runs, show only its own warnings and errors on the terminal.

    Prefect's console handlers (which print every task run's state, the embedded server's
    start and the libraries' warnings) are set aside and given back afterwards; the flow
    run's log in Prefect keeps everything.

    Args:
        verbose: Change nothing: show every log line as Prefect does.

    Yields:
        Nothing; run the job inside the context.
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
