"""The output folder: committed parts, the resume ledger and the final append_row file.

Layout under `<output>/`:
    <append_row_file_name>            assembled from committed parts, in mini-batch order
    .parallel_run/job.json            the fingerprint of the job that owns the folder
    .parallel_run/writer.lock         the run writing to the folder now (see writer_lock)
    .parallel_run/staged/             rows written by entry-script processes, not yet committed
    .parallel_run/parts/<id>.rows     a committed mini-batch's rows
    .parallel_run/ledger/<id>.json    the commit record, stamped with the code that made the
                                      rows; its presence is the commit point
    .parallel_run/result.json         the last run's result, for allow_reuse

Only the flow process commits, once per mini-batch id; two attempts of one mini-batch stage to
different files, and committing the same id twice replaces the part, so no row can appear
twice. How each file is made whole, with renames or on an object store without them, is
`folder_files`; what a resumed job finds is `ledger`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import fsspec

from prefect_parallelrun.commit.errors import (
    OutputFolderInUseError,
    OutputFolderNotWritableError,
)
from prefect_parallelrun.commit.folder_files import folder_files
from prefect_parallelrun.commit.folder_paths import STATE_FOLDER, FolderPaths
from prefect_parallelrun.commit.ledger import (
    CODE,
    CommitRecord,
    code_sha256,
    earlier_code_warning,
    read_ledger,
    refuse_a_different_job,
)
from prefect_parallelrun.commit.writer_lock import WriterLock

__all__ = ["CODE", "LOCK_FILE", "STATE_FOLDER", "CommitRecord", "OutputFolder"]

LOCK_FILE = "writer.lock"


class OutputFolder(FolderPaths):
    """One step's output folder, local or any fsspec URL, written by one run at a time.

    The flow process claims it (`claim()` or `prepare()`), commits each mini-batch once its
    attempt succeeded (`commit()`), assembles the append_row file at the end (`assemble()`)
    and releases it (`close()`). Nothing is read or written until one of those is called;
    where its files are is `FolderPaths`.

    Args:
        url: The folder: a local path or an fsspec URL (`s3://bucket/out`, `abfs://...`).
        append_row_file_name: Name of the append_row file in the folder; None for
            summary_only (no rows are kept, only counts).
    """

    def __init__(self, url: str, append_row_file_name: str | None) -> None:
        super().__init__(url, append_row_file_name)
        self._files = folder_files(self._fs, self._state)
        self._lock = WriterLock(
            self._fs, f"{self._state}/{LOCK_FILE}", folder_url=self.url,
            lock_url=self._url_of(f"{self._state}/{LOCK_FILE}"),
        )
        self._code_sha256: str | None = None
        self._resume_warning: str | None = None
        # After prepare(): where each committed mini-batch's rows are (None: no rows). Only
        # this run commits to the folder until close(), so the ledger need not be read again.
        self._parts: dict[str, str | None] | None = None

    def claim(self, run_id: str | None = None) -> None:
        """Make this run the folder's one writer until `close()`; `prepare()` claims it too.

        Claim before writing anything under the folder (the logs included). A lock left by
        a run that died does not block; see `writer_lock` for how a dead holder is told.

        Args:
            run_id: the flow run's id, shown to a run refused because this one holds the folder.

        Raises:
            OutputFolderInUseError: another live run holds the folder; the message names it.
            OutputFolderNotWritableError: the folder cannot be created or written.
        """
        try:
            self._lock.acquire(run_id)
        except OutputFolderInUseError:
            raise
        except OSError as error:
            raise OutputFolderNotWritableError(
                f"The output folder {self.url} cannot be created or written "
                f"({type(error).__name__}: {error}). Choose a folder this process can write "
                f"to: check that no part of the path is a file, and that the filesystem is "
                f"writable and has free space."
            ) from error

    def prepare(self, fingerprint: dict[str, Any], resume: bool) -> dict[str, CommitRecord]:
        """Claim the folder for this job and return the mini-batches already committed.

        With `resume`, a folder left by a job whose fingerprint differs in any entry but
        `code` (the inputs, `mini_batch_size`, ...) is refused, naming what changed; a
        changed `code` resumes, and `resume_warning` then says how many committed
        mini-batches keep the results of an earlier version. Without `resume`, everything
        of the earlier job is removed.

        Args:
            fingerprint: What identifies the job (JSON-serializable), kept in `job.json`.
            resume: Keep what an earlier run of the same job committed.

        Returns:
            The commit records of the mini-batches already committed, by mini-batch id.

        Raises:
            OutputFolderInUseError: another live run holds the folder.
            OutputFolderNotWritableError: the folder cannot be created or written.
            ResumeRefusedError: the folder holds a different job and `resume` is true.
        """
        self.claim()
        previous = self._files.read_json(f"{self._state}/job.json")
        if previous is not None and not resume:
            self._remove_previous_job()
            previous = None
        if previous is not None:
            refuse_a_different_job(self.url, previous, fingerprint)
        self._fs.makedirs(f"{self._state}/ledger", exist_ok=True)
        self._fs.makedirs(f"{self._state}/parts", exist_ok=True)
        self._files.write_atomically(f"{self._state}/job.json", json.dumps(fingerprint, indent=2))
        ledger = read_ledger(self._files)
        self._parts = {mini_batch_id: entry.part for mini_batch_id, entry in ledger.items()}
        self._code_sha256 = code_sha256(fingerprint)
        kept = "rows" if self._append_row_file_name is not None else "counts"
        self._resume_warning = earlier_code_warning(previous, fingerprint, ledger, kept)
        return {mini_batch_id: entry.record for mini_batch_id, entry in ledger.items()}

    @property
    def resume_warning(self) -> str | None:
        """After `prepare()`: the warning to show once when committed mini-batches keep the
        results of an earlier version of the code (entry script, source files, arguments)."""
        return self._resume_warning

    def committed(self) -> dict[str, CommitRecord]:
        """Every commit record in the ledger, read now.

        Returns:
            The records by mini-batch id.
        """
        return {key: entry.record for key, entry in read_ledger(self._files).items()}

    def commit(self, record: CommitRecord, staged_rows: str | None) -> None:
        """Publish a mini-batch's staged rows as its part, then record the commit.

        On an object store the staged rows are the part, and the record names them.
        Committing an id again replaces its part and record.

        Args:
            record: The mini-batch's commit record, stamped with this job's code.
            staged_rows: URL of the attempt's staged rows (`stage_rows`); None for no rows.

        Raises:
            OSError: The part or the record cannot be written; the mini-batch is not committed.
        """
        stamped: dict[str, Any] = {**vars(record), "code_sha256": self._code_sha256}
        part = self._files.commit_part(record.mini_batch_id, staged_rows, stamped)
        if self._parts is not None:
            self._parts[record.mini_batch_id] = part

    def discard(self, staged_rows: str | None) -> None:
        """Remove rows staged by an attempt that will not be committed.

        Args:
            staged_rows: URL of the staged rows; None (no rows) does nothing.
        """
        if staged_rows is None:
            return
        fs, path = fsspec.core.url_to_fs(staged_rows)
        if fs.exists(path):
            fs.rm(path)

    def assemble(self, mini_batch_ids: Iterable[str]) -> None:
        """Write the append_row file from the committed parts, in the given (mini-batch) order.

        Mini-batches without a part (not committed, or no rows) add nothing; summary_only
        writes no file. The file appears whole once written.

        Args:
            mini_batch_ids: The job's mini-batch ids, in plan order.

        Raises:
            OSError: A part cannot be read or the file written; an earlier file stays as it was.
        """
        if self._append_row_file_name is None:
            return
        committed_parts = self._parts
        if committed_parts is None:
            committed_parts = {key: entry.part for key, entry in read_ledger(self._files).items()}
        parts = [
            part for mini_batch_id in mini_batch_ids
            if (part := committed_parts.get(mini_batch_id)) is not None
        ]
        self._files.write_joined(f"{self._root}/{self._append_row_file_name}", parts)

    def save_result(self, result: dict[str, Any]) -> None:
        """Keep the run's result in the folder, for `allow_reuse`.

        Args:
            result: The result, JSON-serializable.
        """
        self._files.write_atomically(f"{self._state}/result.json", json.dumps(result, indent=2))

    def load_result(self) -> dict[str, Any] | None:
        """The result kept by `save_result()`.

        Returns:
            The result; None when no run saved one.
        """
        result: dict[str, Any] | None = self._files.read_json(f"{self._state}/result.json")
        return result

    def close(self) -> None:
        """Release the folder (see `claim()`) and remove this run's local staging folder."""
        self._lock.release()
        self._remove_local_staging()

    def _remove_previous_job(self) -> None:
        """Remove the earlier job's state and output file, keeping this run's lock."""
        if self._fs.exists(self._state):
            for path in self._fs.ls(self._state, detail=False):
                if not path.rstrip("/").rsplit("/", 1)[-1].startswith(LOCK_FILE):
                    self._fs.rm(path, recursive=True)
        if self._append_row_file_name is not None:
            final = f"{self._root}/{self._append_row_file_name}"
            if self._fs.exists(final):
                self._fs.rm(final)
