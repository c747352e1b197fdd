"""Commit stage: staged rows, atomic parts, the resume ledger, the writer lock and the final
append_row file."""

from prefect_parallelrun.commit.errors import OutputFolderInUseError, ResumeRefusedError
from prefect_parallelrun.commit.output_folder import CODE, CommitRecord, OutputFolder
from prefect_parallelrun.commit.rows import format_rows, stage_rows

__all__ = [
    "CODE",
    "CommitRecord",
    "OutputFolder",
    "OutputFolderInUseError",
    "ResumeRefusedError",
    "format_rows",
    "stage_rows",
]
