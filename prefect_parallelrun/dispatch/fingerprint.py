"""The identity of a job's results, used to refuse a wrong resume and to reuse a finished run."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect_parallelrun.config import ParallelRunConfig

# The fields that decide what a job writes; the rest (cluster size, timeouts, retries,
# thresholds, log level) may change between a stopped run and its resume, which is the point
# of resuming: for example, a larger timeout after mini-batches timed out.
RESULT_SHAPING_FIELDS = (
    "entry_script",
    "output_action",
    "mini_batch_size",
    "partition_keys",
    "append_row_file_name",
    "environment",
)


def job_fingerprint(
    config: ParallelRunConfig, inputs_fingerprint: str, arguments: list[str]
) -> dict[str, Any]:
    """A JSON-able mapping: one entry per thing whose change makes old results wrong."""
    return {
        "config": {name: getattr(config, name) for name in RESULT_SHAPING_FIELDS},
        "entry_script_sha256": _sha256(entry_script_path(config)),
        "inputs": inputs_fingerprint,
        "arguments": list(arguments),
    }


def entry_script_path(config: ParallelRunConfig) -> Path:
    return Path(config.source_directory or ".") / config.entry_script


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise FileNotFoundError(
            f"entry_script {path} cannot be read ({error.strerror}). Check entry_script and "
            f"source_directory in the ParallelRunConfig."
        ) from error
