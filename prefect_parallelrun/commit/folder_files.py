"""Whole files in an output folder: the commit protocol with renames, and the one without.

With renames (local disk, and any fsspec filesystem that is not an object store), every file is
written under a temporary name and then moved into place, so a reader (or a resumed job) sees a
whole file or none; a committed mini-batch's staged rows are moved to `parts/<id>.rows`.

On object storage (S3, Azure Blob, Google Cloud Storage) a write is already whole-or-nothing and
a move is a copy plus a delete, each a round trip. There, nothing is moved: the staged rows stay
where the entry-script process wrote them, and the ledger record, written once, names them
(`"rows": "staged/<name>"`) and is the commit point. Staged rows that no record names belong to
attempts that were not committed and are never read.

On local disk the renaming protocol calls the operating system (`open`, `os.replace`,
`os.listdir`) rather than fsspec: the flow process commits every mini-batch and a resumed job
reads every ledger record, and fsspec's path handling cost more than the calls themselves.

Over 250 lines as one concern: the protocols share one contract (`FolderFiles`) and differ in a
few methods each, which read best side by side.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from prefect_parallelrun.commit.rows import OBJECT_STORES, protocols

# Parts or ledger records read in one call (concurrently, on an object store).
PARTS_PER_READ = 64


def folder_files(fs: fsspec.AbstractFileSystem, state: str) -> FolderFiles:
    """The commit protocol that suits `fs`: in place on an object store, by renames elsewhere.

    Args:
        fs: The output folder's filesystem.
        state: Path of the folder's `.parallel_run` folder on `fs`.

    Returns:
        The in-place protocol on an object store, the renaming one elsewhere (on local disk
        with the operating system's calls).
    """
    if OBJECT_STORES & set(protocols(fs)):
        return _InPlaceFiles(fs, state)
    if isinstance(fs, LocalFileSystem):
        return _LocalFiles(fs, state)
    return _RenamingFiles(fs, state)


class FolderFiles(ABC):
    """The files of one output folder's `.parallel_run` state, written whole or not at all.

    Subclasses differ only where the filesystems do: how a file is made whole, how a mini-batch's
    staged rows become its part, and how the parts become one file.

    Args:
        fs: The output folder's filesystem.
        state: Path of the folder's `.parallel_run` folder on `fs`.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, state: str) -> None:
        self.fs = fs
        self.state = state
        self.ledger_folder = f"{state}/ledger"

    def moved_part(self, mini_batch_id: str) -> str:
        """Where a part moved into place by renames lies (also read back on object stores,
        whose folders earlier versions of the package committed this way).

        Args:
            mini_batch_id: The mini-batch's id.

        Returns:
            The part's path on the filesystem.
        """
        return f"{self.state}/parts/{mini_batch_id}.rows"

    @abstractmethod
    def write_atomically(self, path: str, text: str) -> None:
        """Write `text` (UTF-8) to `path` so that a reader sees the old file, or all of it.

        Args:
            path: The file's path on the filesystem.
            text: Its whole content.

        Raises:
            OSError: The file cannot be written; no half-written file is left behind.
        """

    def commit_part(
        self, mini_batch_id: str, staged_rows: str | None, record: dict[str, Any]
    ) -> str | None:
        """Make `staged_rows` the mini-batch's part, then write its ledger record: the commit.

        Args:
            mini_batch_id: The mini-batch's id; committing an id again replaces its part.
            staged_rows: URL of the rows an entry-script process staged; None for no rows.
            record: The ledger record's fields; the in-place protocol adds `rows`.

        Returns:
            The part's path on the filesystem, None when the mini-batch has no rows.

        Raises:
            OSError: The part or the record cannot be written; the mini-batch is not committed.
        """
        part = self._place_part(mini_batch_id, staged_rows, record)
        self.write_atomically(f"{self.ledger_folder}/{mini_batch_id}.json", json.dumps(record))
        return part

    @abstractmethod
    def _place_part(
        self, mini_batch_id: str, staged_rows: str | None, record: dict[str, Any]
    ) -> str | None:
        """Where the part is once committed (None: no rows), moving it there if need be."""

    @abstractmethod
    def write_joined(self, path: str, parts: list[str]) -> None:
        """Write `parts`, in order, as the one file `path`, which appears whole once complete.

        Args:
            path: The joined file's path on the filesystem.
            parts: The parts' paths, in the order their rows appear.

        Raises:
            OSError: A part cannot be read or the file written; `path` is left as it was.
        """

    def read_json(self, path: str) -> Any:
        """The JSON value in `path`.

        Args:
            path: The file's path on the filesystem.

        Returns:
            The parsed value; None when there is no such file.
        """
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r", encoding="utf-8") as file:
            return json.load(file)

    def files_in(self, folder: str, suffix: str) -> list[str]:
        """The paths of the files in `folder` whose names end with `suffix`, sorted.

        Args:
            folder: A folder's path on the filesystem; it may not exist (no files).
            suffix: The names' ending, such as ".json".

        Returns:
            Their paths on the filesystem.
        """
        return sorted(self.fs.glob(f"{folder}/*{suffix}"))

    def exists(self, path: str) -> bool:
        """Whether a file is there.

        Args:
            path: The file's path on the filesystem.

        Returns:
            Whether it exists.
        """
        return bool(self.fs.exists(path))

    def read_each(self, paths: list[str]) -> Iterator[bytes]:
        """The contents of `paths`, in order: one request each, `PARTS_PER_READ` at a time,
        concurrent on object stores.

        Each is read as the range from byte 0 (a whole read costs s3fs a HEAD first); an
        empty object has no such range, so a failed read is tried once more as a whole.

        Args:
            paths: Paths of existing files on the filesystem.

        Returns:
            An iterator of their contents, in the order of `paths`.
        """
        for first in range(0, len(paths), PARTS_PER_READ):
            batch = paths[first:first + PARTS_PER_READ]
            contents = self.fs.cat_ranges(batch, 0, None)
            yield from [
                self.fs.cat_file(path) if isinstance(content, BaseException) else content
                for path, content in zip(batch, contents, strict=True)
            ]


class _RenamingFiles(FolderFiles):
    """Whole files by writing a temporary file and moving it into place; see `FolderFiles`."""

    def write_atomically(self, path: str, text: str) -> None:
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        with self._removed_on_error(temporary):
            with self._open(temporary, "wb") as file:
                file.write(text.encode("utf-8"))
            self._move(temporary, path)

    def _place_part(
        self, mini_batch_id: str, staged_rows: str | None, record: dict[str, Any]
    ) -> str | None:
        if staged_rows is None:
            return None
        part = self.moved_part(mini_batch_id)
        self._publish(staged_rows, part)
        return part

    def write_joined(self, path: str, parts: list[str]) -> None:
        folder, name = path.rsplit("/", 1)
        temporary = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        with self._removed_on_error(temporary):
            with self._open(temporary, "wb") as joined:
                for part in parts:
                    with suppress(FileNotFoundError), self._open(part, "rb") as rows:
                        joined.write(rows.read())
            self._move(temporary, path)

    def _open(self, path: str, mode: str) -> IO[bytes]:
        return self.fs.open(path, mode)

    def _move(self, source: str, destination: str) -> None:
        self.fs.mv(source, destination)

    def _publish(self, staged_rows: str, destination: str) -> None:
        staged_fs, staged_path = fsspec.core.url_to_fs(staged_rows)
        if type(staged_fs) is type(self.fs):
            self._move(staged_path, destination)
            return
        temporary = f"{destination}.{uuid.uuid4().hex}.tmp"
        with staged_fs.open(staged_path, "rb") as source, self._open(temporary, "wb") as target:
            target.write(source.read())
        self._move(temporary, destination)
        staged_fs.rm(staged_path)

    @contextmanager
    def _removed_on_error(self, temporary: str) -> Iterator[None]:
        """Remove a half-written temporary file when writing it fails (a full disk), so that
        the folder keeps only whole files; the error goes on."""
        try:
            yield
        except BaseException:
            with suppress(OSError):
                if self.fs.exists(temporary):
                    self.fs.rm(temporary)
            raise


class _LocalFiles(_RenamingFiles):
    """The renaming protocol with the operating system's calls, on local disk (paths are the
    local filesystem's; rows staged there are plain paths); see the module's docstring."""

    def _open(self, path: str, mode: str) -> IO[bytes]:
        return open(path, mode)

    def _move(self, source: str, destination: str) -> None:
        os.replace(source, destination)

    def files_in(self, folder: str, suffix: str) -> list[str]:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return sorted(f"{folder}/{name}" for name in names if name.endswith(suffix))

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def read_each(self, paths: list[str]) -> Iterator[bytes]:
        for path in paths:
            with open(path, "rb") as file:
                yield file.read()

    def _publish(self, staged_rows: str, destination: str) -> None:
        if "://" in staged_rows:
            super()._publish(staged_rows, destination)
        else:
            os.replace(staged_rows, destination)


class _InPlaceFiles(FolderFiles):
    """Whole files on an object store, where every write is whole-or-nothing and nothing is
    moved; see `FolderFiles`."""

    def write_atomically(self, path: str, text: str) -> None:
        self.fs.pipe_file(path, text.encode("utf-8"))

    def _place_part(
        self, mini_batch_id: str, staged_rows: str | None, record: dict[str, Any]
    ) -> str | None:
        part = None if staged_rows is None else self.fs._strip_protocol(staged_rows)
        record["rows"] = None if part is None else posixpath.relpath(part, self.state)
        return part

    def write_joined(self, path: str, parts: list[str]) -> None:
        # One object, written as a multipart upload when large, that appears once complete.
        joined = self.fs.open(path, "wb")
        try:
            for rows in self.read_each(parts):
                joined.write(rows)
        except BaseException:
            # Closing would complete the upload with what was written so far: abort it
            # instead, and mark the file closed so that nothing completes it later.
            joined.discard()
            joined.closed = True
            raise
        joined.close()
