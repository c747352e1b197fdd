"""What an output folder says about its job, read by `prefect-parallelrun status`.

Everything comes from files (docs/outputs.md), so it works from any shell, while the job runs
or after it ended: the writer lock says whether a run holds the folder and whether that run is
alive, the ledger counts the committed mini-batches, and the logs folder holds the result, the
progress lines and the attempt report.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Literal

import fsspec
from fsspec.implementations.local import LocalFileSystem

from prefect_parallelrun.commit.output_folder import LOCK_FILE, STATE_FOLDER, OutputFolder
from prefect_parallelrun.commit.writer_lock import Holder
from prefect_parallelrun.report.result import ParallelRunResult

ATTEMPT_REPORT = "logs/sys/job_report/processed_mini-batches.csv"
JobState = Literal["running", "stopped", "finished", "not finished"]


class NotAnOutputFolderError(ValueError):
    """The folder given to `status` holds no job's state."""


@dataclass(frozen=True)
class FailedMiniBatch:
    """A mini-batch not committed whose latest attempt failed."""

    index: int
    mini_batch_id: str
    attempts: int
    status: str
    last_error: str


@dataclass(frozen=True)
class FolderStatus:
    """Where the job of one output folder stands.

    `state` is "running" while a live run holds the folder, "stopped" when the run that held
    it is gone without finishing, "finished" when a run wrote its result, and "not finished"
    when there is neither a holder nor a result (a run that stopped before writing one).
    """

    folder: str
    state: JobState
    holder: Holder | None
    result_lines: list[str]
    committed_mini_batches: int
    committed_items: int
    progress_line: str | None
    failed_mini_batches: list[FailedMiniBatch] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """Whether a run finished and its result is Completed."""
        return self.state == "finished" and self.result_lines[0].startswith("Completed")


def read_folder_status(folder: str) -> FolderStatus:
    """Read the state of the job in an output folder, from its files alone.

    Args:
        folder: The output folder: a path or fsspec URL.

    Returns:
        The job's state, committed counts, last progress line and failed mini-batches.

    Raises:
        NotAnOutputFolderError: `folder` does not exist or holds no `.parallel_run` state.
    """
    fs, root = fsspec.core.url_to_fs(str(folder).rstrip("/") or "/")
    url = root if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(root)
    if not fs.isdir(f"{root}/{STATE_FOLDER}"):
        what = "does not exist" if not fs.exists(root) else "holds no .parallel_run folder"
        raise NotAnOutputFolderError(
            f"{folder} is not the output folder of a parallel run: it {what}. Pass the folder "
            f"that was given to 'prefect-parallelrun run --output'."
        )
    holder = Holder.read(fs, f"{root}/{STATE_FOLDER}/{LOCK_FILE}")
    committed = OutputFolder(url, None).committed()
    result_lines = _result_lines(fs, root)
    if holder is not None and holder.is_alive():
        state: JobState = "running"
        result_lines = []  # result.json is an earlier run's while this one runs
    elif holder is not None:
        state = "stopped"
    else:
        state = "finished" if result_lines else "not finished"
    return FolderStatus(
        folder=url,
        state=state,
        holder=holder,
        result_lines=result_lines,
        committed_mini_batches=len(committed),
        committed_items=sum(record.succeeded_items for record in committed.values()),
        progress_line=_last_line(_read_text(fs, f"{root}/logs/job_progress_overview.txt")),
        failed_mini_batches=_failed_mini_batches(
            _read_text(fs, f"{root}/{ATTEMPT_REPORT}"), set(committed)
        ),
    )


def _result_lines(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    """job_result.txt; the ledger's copy of the result when the logs folder is gone."""
    text = _read_text(fs, f"{root}/logs/job_result.txt")
    if text and text.strip():
        return text.strip().splitlines()
    stored = _read_text(fs, f"{root}/{STATE_FOLDER}/result.json")
    if stored:
        return ParallelRunResult.from_dict(json.loads(stored)["result"]).summary_lines()
    return []


def _failed_mini_batches(report: str | None, committed: set[str]) -> list[FailedMiniBatch]:
    """The mini-batches whose latest attempt in the report failed, less the committed ones."""
    if not report:
        return []
    latest: dict[str, dict[str, str]] = {}
    attempts: dict[str, int] = {}
    for row in csv.DictReader(io.StringIO(report)):
        key = row.get("mini_batch") or ""
        latest[key] = row
        attempts[key] = attempts.get(key, 0) + 1
    failed = []
    for key, row in latest.items():
        index, _, mini_batch_id = key.partition(":")
        if row.get("status") == "succeeded" or mini_batch_id in committed or not index.isdigit():
            continue
        failed.append(
            FailedMiniBatch(
                index=int(index), mini_batch_id=mini_batch_id, attempts=attempts[key],
                status=row.get("status") or "", last_error=row.get("error") or "",
            )
        )
    return sorted(failed, key=lambda mini_batch: mini_batch.index)


def _read_text(fs: fsspec.AbstractFileSystem, path: str) -> str | None:
    try:
        with fs.open(path, "r", encoding="utf-8") as file:
            return file.read()
    except (FileNotFoundError, IsADirectoryError):
        return None


def _last_line(text: str | None) -> str | None:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else None
