"""What the command line shows once a job ended: the closing summary, and an output folder's
status for `prefect-parallelrun status`."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from prefect_parallelrun.report.folder_status import FolderStatus
from prefect_parallelrun.report.result import ParallelRunResult


def print_summary(console: Console, result: ParallelRunResult) -> None:
    """The closing summary: the result's message, a table of the figures, the paths.

    Args:
        console: Where to print.
        result: The job's result.
    """
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


def print_folder_status(console: Console, status: FolderStatus, failures_shown: int) -> None:
    """`status`: the state of the job in an output folder, then its failed mini-batches
    (on a console that does not wrap lines, so that paths and errors stay whole).

    Args:
        console: Where to print.
        status: What `read_folder_status` found.
        failures_shown: How many failed mini-batches to list (the `terminal_failures_shown`
            setting); the rest are counted.
    """
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
    _print_failures(console, status, failures_shown)


def _print_failures(console: Console, status: FolderStatus, failures_shown: int) -> None:
    failed = status.failed_mini_batches
    if not failed:
        return
    still = " (some may still be retried)" if status.state == "running" else ""
    console.print(
        f"\n[bold red]{_count(len(failed), 'mini-batch')} without a committed result[/]"
        f"{still}, with the last error of each:", highlight=False,
    )
    for mini_batch in failed[:failures_shown]:
        console.print(
            f"  mini-batch {mini_batch.index} ({_count(mini_batch.attempts, 'attempt')}, "
            f"{mini_batch.status}): {mini_batch.last_error or 'no error recorded'}",
            markup=False, highlight=False,
        )
    if len(failed) > failures_shown:
        console.print(f"  ... and {len(failed) - failures_shown} more.", highlight=False)
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


def format_clock(seconds: float) -> str:
    """A duration as `H:MM:SS`.

    Args:
        seconds: The duration.

    Returns:
        The duration, rounded to the second.
    """
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else format_clock(seconds)
