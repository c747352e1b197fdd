"""Commit stage: staged rows, atomic parts, the resume ledger and the final append_row file."""

from prefect_parallelrun.commit.errors import ResumeRefusedError
from prefect_parallelrun.commit.output_folder import CommitRecord, OutputFolder
from prefect_parallelrun.commit.rows import format_rows, stage_rows

__all__ = ["CommitRecord", "OutputFolder", "ResumeRefusedError", "format_rows", "stage_rows"]
