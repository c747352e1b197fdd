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

Every file is written under a temporary name and then moved into place, so a reader (or a
resumed job) sees a whole part or none. Only the flow process commits, once per mini-batch id;
two attempts of one mini-batch stage to different files, and committing the same id twice
replaces the part, so no row can appear twice.

On object storage (S3, Azure Blob, Google Cloud Storage) a write is already whole-or-nothing
and a move is a copy plus a delete, each a round trip. There, nothing is moved: the staged rows
stay where the entry-script process wrote them, and the ledger record, written once, names them
(`"rows": "staged/<name>"`) and is the commit point. Staged rows that no record names belong to
attempts that were not committed and are never read.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from prefect_parallelrun.commit.errors import (
    OutputFolderInUseError,
    OutputFolderNotWritableError,
    ResumeRefusedError,
)
from prefect_parallelrun.commit.rows import OBJECT_STORES
from prefect_parallelrun.commit.writer_lock import WriterLock

STATE_FOLDER = ".parallel_run"
LOCK_FILE = "writer.lock"
# The fingerprint entry for what produced the rows (script, source files, arguments): unlike
# every other entry, it may change on resume, since fixing the script is why one resumes.
CODE = "code"
# Parts or ledger records read in one call (concurrently, on an object store).
PARTS_PER_READ = 64


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
        self._lock = WriterLock(
            self._fs, f"{self._state}/{LOCK_FILE}", folder_url=self.url,
            lock_url=self._url_of(f"{self._state}/{LOCK_FILE}"),
        )
        self._code_sha256: str | None = None
        self._resume_warning: str | None = None
        self._in_place = bool(OBJECT_STORES & set(_protocols(self._fs)))
        # After prepare(): where each committed mini-batch's rows are (None: no rows). Only
        # this run commits to the folder until close(), so the ledger need not be read again.
        self._parts: dict[str, str | None] | None = None

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

        Raises:
            OutputFolderInUseError: another live run holds the folder.
            ResumeRefusedError: the folder holds a different job and `resume` is true.
        """
        self.claim()
        previous = self._read_json(f"{self._state}/job.json")
        if previous is not None and not resume:
            self._remove_previous_job()
            previous = None
        if previous is not None:
            self._refuse_a_different_job(previous, fingerprint)
        self._fs.makedirs(f"{self._state}/ledger", exist_ok=True)
        self._fs.makedirs(f"{self._state}/parts", exist_ok=True)
        self._write_atomically(f"{self._state}/job.json", json.dumps(fingerprint, indent=2))
        ledger = self._ledger()
        self._parts = {mini_batch_id: part for mini_batch_id, (_, _, part) in ledger.items()}
        self._code_sha256 = _sha256_of(fingerprint.get(CODE))
        self._resume_warning = self._earlier_code_warning(previous, fingerprint, ledger)
        return {mini_batch_id: record for mini_batch_id, (record, _, _) in ledger.items()}

    @property
    def resume_warning(self) -> str | None:
        """After `prepare()`: the warning to show once when committed mini-batches keep the
        results of an earlier version of the code (entry script, source files, arguments)."""
        return self._resume_warning

    def committed(self) -> dict[str, CommitRecord]:
        """Every commit record in the ledger, by mini-batch id."""
        return {mini_batch_id: record for mini_batch_id, (record, _, _) in self._ledger().items()}

    def commit(self, record: CommitRecord, staged_rows: str | None) -> None:
        """Publish a mini-batch's staged rows as its part, then record the commit.

        On an object store the staged rows are the part, and the record names them."""
        stamped: dict[str, Any] = {**asdict(record), "code_sha256": self._code_sha256}
        part = None
        if self._in_place:
            if staged_rows is not None:
                part = self._fs._strip_protocol(staged_rows)
            stamped["rows"] = None if part is None else posixpath.relpath(part, self._state)
        elif staged_rows is not None:
            part = f"{self._state}/parts/{record.mini_batch_id}.rows"
            self._publish(staged_rows, part)
        self._write_atomically(
            f"{self._state}/ledger/{record.mini_batch_id}.json", json.dumps(stamped)
        )
        if self._parts is not None:
            self._parts[record.mini_batch_id] = part

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
        committed_parts = self._parts
        if committed_parts is None:
            committed_parts = {key: part for key, (_, _, part) in self._ledger().items()}
        parts = [
            part for mini_batch_id in mini_batch_ids
            if (part := committed_parts.get(mini_batch_id)) is not None
        ]
        final_path = f"{self._root}/{self._append_row_file_name}"
        if self._in_place:
            self._upload_in_one(final_path, parts)
            return
        temporary = f"{self._root}/.{self._append_row_file_name}.{uuid.uuid4().hex}.tmp"
        with self._removed_on_error(temporary):
            with self._fs.open(temporary, "wb") as final:
                for part in parts:
                    if self._fs.exists(part):
                        with self._fs.open(part, "rb") as rows:
                            final.write(rows.read())
            self._fs.mv(temporary, final_path)

    def _upload_in_one(self, path: str, parts: list[str]) -> None:
        """Write `parts`, in order, as one object that appears whole once complete (a
        multipart upload when large); parts are read a batch at a time, concurrently."""
        final = self._fs.open(path, "wb")
        try:
            for first in range(0, len(parts), PARTS_PER_READ):
                for rows in self._read_all(parts[first:first + PARTS_PER_READ]):
                    final.write(rows)
        except BaseException:
            # Closing would complete the upload with what was written so far: abort it
            # instead, and mark the file closed so that nothing completes it later.
            final.discard()
            final.closed = True
            raise
        final.close()

    def _read_all(self, paths: list[str]) -> list[bytes]:
        """The contents of `paths`, in order: one request each, concurrent on object stores.

        Each is read as the range from byte 0 (a whole read costs s3fs a HEAD first); an
        empty object has no such range, so a failed read is tried once more as a whole."""
        contents = self._fs.cat_ranges(paths, 0, None)
        return [
            self._fs.cat_file(path) if isinstance(content, BaseException) else content
            for path, content in zip(paths, contents, strict=True)
        ]

    def save_result(self, result: dict[str, Any]) -> None:
        self._write_atomically(f"{self._state}/result.json", json.dumps(result, indent=2))

    def load_result(self) -> dict[str, Any] | None:
        return self._read_json(f"{self._state}/result.json")

    def close(self) -> None:
        """Release the folder (see `claim()`) and remove this run's local staging folder."""
        self._lock.release()
        if self._local_staging is not None:
            self._local_staging.cleanup()
            self._local_staging = None

    def _refuse_a_different_job(
        self, previous: dict[str, Any], fingerprint: dict[str, Any]
    ) -> None:
        changed = _changed(
            {key: value for key, value in previous.items() if key != CODE},
            {key: value for key, value in fingerprint.items() if key != CODE},
        )
        if changed:
            raise ResumeRefusedError(
                f"The output folder {self.url} holds an earlier run of a different job "
                f"(changed: {', '.join(changed)}), so it cannot be resumed. Run again with "
                f"resume=False (command line: --no-resume) to start over and replace its "
                f"results, or choose another output folder."
            )

    def _earlier_code_warning(
        self, previous: dict[str, Any] | None, fingerprint: dict[str, Any],
        ledger: dict[str, tuple[CommitRecord, str | None, str | None]],
    ) -> str | None:
        """The warning for committed mini-batches whose stamp is not the current code's.

        A record without a stamp was committed under the previous run's code."""
        earlier_code = _sha256_of(previous.get(CODE)) if previous else self._code_sha256
        count = sum(
            1 for _, stamp, _ in ledger.values() if (stamp or earlier_code) != self._code_sha256
        )
        if count == 0:
            return None
        changed = []
        if previous is not None:
            changed = _changed(previous.get(CODE) or {}, fingerprint.get(CODE) or {})
        since = f" (changed since the last run: {', '.join(changed)})" if changed else ""
        kept = "rows" if self._append_row_file_name is not None else "counts"
        mini_batches = "mini-batch keeps its" if count == 1 else "mini-batches keep their"
        return (
            f"Resuming with a different entry script, source_directory, arguments or "
            f"environment{since}: {count} committed {mini_batches} {kept} from an earlier "
            f"version and will not run again. Run with resume=False (command line: "
            f"--no-resume) to recompute them."
        )

    def _ledger(self) -> dict[str, tuple[CommitRecord, str | None, str | None]]:
        """Every commit record by mini-batch id, with the code stamp it was committed under
        and the path of its rows (None when it has none)."""
        paths = sorted(self._fs.glob(f"{self._state}/ledger/*.json"))
        records = {}
        for first in range(0, len(paths), PARTS_PER_READ):
            for text in self._read_all(paths[first:first + PARTS_PER_READ]):
                fields = json.loads(text)
                stamp = fields.pop("code_sha256", None)
                names_its_rows = "rows" in fields
                rows = fields.pop("rows", None)
                record = CommitRecord(**fields)
                part: str | None = f"{self._state}/parts/{record.mini_batch_id}.rows"
                if names_its_rows:
                    part = None if rows is None else f"{self._state}/{rows}"
                elif not self._fs.exists(part):
                    part = None
                records[record.mini_batch_id] = (record, stamp, part)
        return records

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
        if self._in_place:
            self._fs.pipe_file(path, text.encode("utf-8"))
            return
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        with self._removed_on_error(temporary):
            with self._fs.open(temporary, "w", encoding="utf-8") as file:
                file.write(text)
            self._fs.mv(temporary, path)

    @contextmanager
    def _removed_on_error(self, temporary: str) -> Iterator[None]:
        """Remove a half-written temporary file when writing it fails (a full disk), so that
        the folder keeps only whole files; the error goes on."""
        try:
            yield
        except BaseException:
            with suppress(OSError):
                if self._fs.exists(temporary):
                    self._fs.rm(temporary)
            raise

    def _read_json(self, path: str) -> Any:
        if not self._fs.exists(path):
            return None
        with self._fs.open(path, "r", encoding="utf-8") as file:
            return json.load(file)

    def _url_of(self, path: str) -> str:
        return path if self.is_local() else self._fs.unstrip_protocol(path)


def _changed(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return sorted(
        key for key in set(previous) | set(current) if previous.get(key) != current.get(key)
    )


def _sha256_of(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
