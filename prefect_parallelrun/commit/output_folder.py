"""The output folder: committed parts, the resume ledger and the final append_row file.

Layout under `<output>/`:
    <append_row_file_name>            assembled from committed parts, in mini-batch order
    .parallel_run/job.json            the fingerprint of the job that owns the folder
    .parallel_run/staged/             rows written by entry-script processes, not yet committed
    .parallel_run/parts/<id>.rows     a committed mini-batch's rows
    .parallel_run/ledger/<id>.json    the commit record; its presence is the commit point
    .parallel_run/result.json         the last run's result, for allow_reuse

Every file is written under a temporary name and then moved into place, so a reader (or a
resumed job) sees a whole part or none. Only the flow process commits, once per mini-batch id;
two attempts of one mini-batch stage to different files, and committing the same id twice
replaces the part, so no row can appear twice.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from prefect_parallelrun.commit.errors import ResumeRefusedError

STATE_FOLDER = ".parallel_run"


@dataclass(frozen=True)
class CommitRecord:
    """What the ledger keeps of one committed mini-batch."""

    mini_batch_id: str
    mini_batch_index: int
    attempt: int
    items: int
    succeeded_items: int
    failed_items: int


class OutputFolder:
    """One step's output folder, local or any fsspec URL."""

    def __init__(self, url: str, append_row_file_name: str | None) -> None:
        self.url = url.rstrip("/")
        self._fs, self._root = fsspec.core.url_to_fs(self.url)
        self._append_row_file_name = append_row_file_name
        self._state = f"{self._root}/{STATE_FOLDER}"
        self._local_staging: tempfile.TemporaryDirectory[str] | None = None

    @property
    def output_file(self) -> str | None:
        """URL (or local path) of the append_row file, None for summary_only."""
        if self._append_row_file_name is None:
            return None
        return self._url_of(f"{self._root}/{self._append_row_file_name}")

    @property
    def staging_dir(self) -> str:
        """Where entry-script processes stage rows; on this machine when the filesystem is
        private to one process (memory://), so that worker processes and the flow share it."""
        if "memory" in _protocols(self._fs):
            if self._local_staging is None:
                self._local_staging = tempfile.TemporaryDirectory(prefix="parallel-run-staged-")
            return self._local_staging.name
        return self._url_of(f"{self._state}/staged")

    def is_local(self) -> bool:
        return isinstance(self._fs, LocalFileSystem)

    @property
    def local_path(self) -> str:
        """The folder's path on this machine (local folders only)."""
        return self._root

    @property
    def logs_url(self) -> str:
        return self._url_of(f"{self._root}/logs")

    def publish_logs(self, logs_dir: str | Path) -> None:
        """Copy a logs folder written on this machine into a remote output folder."""
        if self.is_local():
            return
        self._fs.put(str(logs_dir), f"{self._root}/logs", recursive=True)

    def prepare(self, fingerprint: dict[str, Any], resume: bool) -> dict[str, CommitRecord]:
        """Claim the folder for this job and return the mini-batches already committed.

        With `resume`, a folder left by a different job (another script, config or inputs)
        is refused, naming what changed; without it, everything of the earlier job is removed.
        """
        previous = self._read_json(f"{self._state}/job.json")
        if previous is not None and not resume:
            self._remove_previous_job()
            previous = None
        if previous is not None and previous != fingerprint:
            changed = sorted(
                key for key in set(previous) | set(fingerprint)
                if previous.get(key) != fingerprint.get(key)
            )
            raise ResumeRefusedError(
                f"The output folder {self.url} holds an earlier run of a different job "
                f"(changed: {', '.join(changed)}), so it cannot be resumed. Run again with "
                f"resume=False (command line: --no-resume) to start over and replace its "
                f"results, or choose another output folder."
            )
        self._fs.makedirs(f"{self._state}/ledger", exist_ok=True)
        self._fs.makedirs(f"{self._state}/parts", exist_ok=True)
        self._write_atomically(f"{self._state}/job.json", json.dumps(fingerprint, indent=2))
        return self.committed()

    def committed(self) -> dict[str, CommitRecord]:
        """Every commit record in the ledger, by mini-batch id."""
        records = {}
        for path in self._fs.glob(f"{self._state}/ledger/*.json"):
            with self._fs.open(path, "r", encoding="utf-8") as file:
                record = CommitRecord(**json.load(file))
            records[record.mini_batch_id] = record
        return records

    def commit(self, record: CommitRecord, staged_rows: str | None) -> None:
        """Publish a mini-batch's staged rows as its part, then record the commit."""
        if staged_rows is not None:
            self._publish(staged_rows, f"{self._state}/parts/{record.mini_batch_id}.rows")
        self._write_atomically(
            f"{self._state}/ledger/{record.mini_batch_id}.json", json.dumps(asdict(record))
        )

    def discard(self, staged_rows: str | None) -> None:
        """Remove rows staged by an attempt that will not be committed."""
        if staged_rows is None:
            return
        fs, path = fsspec.core.url_to_fs(staged_rows)
        if fs.exists(path):
            fs.rm(path)

    def assemble(self, mini_batch_ids: Iterable[str]) -> None:
        """Write the append_row file from the committed parts, in the given (mini-batch) order."""
        if self._append_row_file_name is None:
            return
        committed = self.committed()
        temporary = f"{self._root}/.{self._append_row_file_name}.{uuid.uuid4().hex}.tmp"
        with self._fs.open(temporary, "wb") as final:
            for mini_batch_id in mini_batch_ids:
                part = f"{self._state}/parts/{mini_batch_id}.rows"
                if mini_batch_id in committed and self._fs.exists(part):
                    with self._fs.open(part, "rb") as rows:
                        final.write(rows.read())
        self._fs.mv(temporary, f"{self._root}/{self._append_row_file_name}")

    def save_result(self, result: dict[str, Any]) -> None:
        self._write_atomically(f"{self._state}/result.json", json.dumps(result, indent=2))

    def load_result(self) -> dict[str, Any] | None:
        return self._read_json(f"{self._state}/result.json")

    def close(self) -> None:
        if self._local_staging is not None:
            self._local_staging.cleanup()
            self._local_staging = None

    def _remove_previous_job(self) -> None:
        if self._fs.exists(self._state):
            self._fs.rm(self._state, recursive=True)
        if self._append_row_file_name is not None:
            final = f"{self._root}/{self._append_row_file_name}"
            if self._fs.exists(final):
                self._fs.rm(final)

    def _publish(self, staged_rows: str, destination: str) -> None:
        staged_fs, staged_path = fsspec.core.url_to_fs(staged_rows)
        if type(staged_fs) is type(self._fs):
            self._fs.mv(staged_path, destination)
            return
        temporary = f"{destination}.{uuid.uuid4().hex}.tmp"
        with staged_fs.open(staged_path, "rb") as source, self._fs.open(temporary, "wb") as target:
            target.write(source.read())
        self._fs.mv(temporary, destination)
        staged_fs.rm(staged_path)

    def _write_atomically(self, path: str, text: str) -> None:
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        with self._fs.open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
        self._fs.mv(temporary, path)

    def _read_json(self, path: str) -> Any:
        if not self._fs.exists(path):
            return None
        with self._fs.open(path, "r", encoding="utf-8") as file:
            return json.load(file)

    def _url_of(self, path: str) -> str:
        return path if self.is_local() else self._fs.unstrip_protocol(path)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
