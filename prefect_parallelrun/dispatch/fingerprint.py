"""The identity of a job's results, used to refuse a wrong resume and to reuse a finished run.

Two kinds of entries. Those that decide which rows go where (the inputs and the config fields
in `LAYOUT_FIELDS`) must not change on resume: the committed rows would no longer line up with
the mini-batches. Those under `code` say what produced the rows (the entry script's contents,
the files in `source_directory`, the arguments, the environment); they may change on resume,
which is how a fixed script resumes, and the run then warns that earlier rows are kept.
`allow_reuse` reuses a run only when every entry, `code` included, is unchanged.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from prefect_parallelrun.commit import CODE
from prefect_parallelrun.config import ParallelRunConfig

# The rest of the config (cluster size, timeouts, retries, thresholds, log level) may change
# freely between a stopped run and its resume: a larger timeout after mini-batches timed out
# is a reason to resume.
LAYOUT_FIELDS = ("output_action", "mini_batch_size", "partition_keys", "append_row_file_name")
# Not part of a job's code, though they may sit in source_directory: Python's caches, hidden
# files and folders (.git, an output folder's .parallel_run), output folders and the logs of
# runs without one.
SKIPPED_FOLDERS = ("__pycache__", "parallel_run_logs")
OUTPUT_FOLDER_MARK = ".parallel_run"


def job_fingerprint(
    config: ParallelRunConfig, inputs_fingerprint: str, arguments: list[str]
) -> dict[str, Any]:
    """A JSON-able mapping: the job's layout entries, and its code under the `code` key.

    Args:
        config: The job's config.
        inputs_fingerprint: The plan's fingerprint of the inputs.
        arguments: The entry script's arguments.

    Returns:
        The fingerprint, compared with the stored one on resume and for allow_reuse.

    Raises:
        FileNotFoundError: the entry script cannot be read.
    """
    return {
        "inputs": inputs_fingerprint,
        **{name: getattr(config, name) for name in LAYOUT_FIELDS},
        CODE: {
            "entry_script": config.entry_script,
            "entry_script_sha256": _entry_script_sha256(entry_script_path(config)),
            "source_directory_sha256": source_directory_sha256(config.source_directory)
            if config.source_directory else None,
            "arguments": list(arguments),
            "environment": config.environment,
        },
    }


def check_entry_script(config: ParallelRunConfig) -> None:
    """Raise before a job starts when its entry script cannot be read.

    Args:
        config: The job's config: `source_directory` and `entry_script`.

    Raises:
        FileNotFoundError: naming the path and the config fields that make it.
    """
    _entry_script_sha256(entry_script_path(config))


def entry_script_path(config: ParallelRunConfig) -> Path:
    """Where the entry script is, as the config names it.

    Args:
        config: The job's config.

    Returns:
        `entry_script` under `source_directory` (or the working directory).
    """
    return Path(config.source_directory or ".") / config.entry_script


def source_directory_sha256(source_directory: str | Path) -> str:
    """One SHA-256 over the relative path and contents of every file in `source_directory`,
    less hidden files and folders, `__pycache__`, `*.pyc`, output folders and what is not a
    regular file.

    Args:
        source_directory: The folder of the entry script's code.

    Returns:
        The hex digest.
    """
    root = Path(source_directory)
    digest = hashlib.sha256()
    for path in _code_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(_file_sha256(path).encode())
    return digest.hexdigest()


def _code_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(
            name for name in subfolders
            if not name.startswith(".") and name not in SKIPPED_FOLDERS
            and not (Path(folder) / name / OUTPUT_FOLDER_MARK).is_dir()
        )
        files.extend(
            Path(folder) / name for name in sorted(names)
            if not name.startswith(".") and not name.endswith(".pyc")
            and (Path(folder) / name).is_file()
        )
    return files


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry_script_sha256(path: Path) -> str:
    try:
        return _file_sha256(path)
    except OSError as error:
        raise FileNotFoundError(
            f"entry_script {path} cannot be read ({error.strerror}). Check entry_script and "
            f"source_directory in the ParallelRunConfig."
        ) from error
