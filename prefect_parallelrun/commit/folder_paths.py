"""Where an output folder's files are: for this process, for the workers and for the reports.

`OutputFolder` builds on `FolderPaths`; the paths are kept apart from the writing because the
report stage and the entry-script processes need only where things are.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from prefect_parallelrun.commit.rows import protocols

STATE_FOLDER = ".parallel_run"


class FolderPaths:
    """The places in one output folder, local or any fsspec URL; nothing is read or written
    until a place is used.

    Args:
        url: The folder: a local path or an fsspec URL (`s3://bucket/out`, `abfs://...`).
        append_row_file_name: Name of the append_row file in the folder; None for
            summary_only (no rows are kept, only counts).
    """

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
        if "memory" in protocols(self._fs):
            if self._local_staging is None:
                self._local_staging = tempfile.TemporaryDirectory(prefix="parallel-run-staged-")
            return self._local_staging.name
        return self._url_of(f"{self._state}/staged")

    def is_local(self) -> bool:
        """Whether the folder is on this machine's filesystem.

        Returns:
            True for a local path, False for any other fsspec URL.
        """
        return isinstance(self._fs, LocalFileSystem)

    @property
    def local_path(self) -> str:
        """The folder's path on this machine (local folders only)."""
        return self._root

    @property
    def logs_url(self) -> str:
        """URL (or local path) of the folder's `logs` folder."""
        return self._url_of(f"{self._root}/logs")

    def publish_logs(self, logs_dir: str | Path) -> None:
        """Copy a logs folder written on this machine into a remote output folder.

        A local output folder holds its logs already, so nothing is copied.

        Args:
            logs_dir: The logs folder on this machine.

        Raises:
            OSError: The logs cannot be copied.
        """
        if self.is_local():
            return
        self._fs.put(str(logs_dir), f"{self._root}/logs", recursive=True)

    def _remove_local_staging(self) -> None:
        if self._local_staging is not None:
            self._local_staging.cleanup()
            self._local_staging = None

    def _url_of(self, path: str) -> str:
        return path if self.is_local() else self._fs.unstrip_protocol(path)
