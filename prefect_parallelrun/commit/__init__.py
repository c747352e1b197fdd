"""Commit stage: staged rows, atomic parts, the resume ledger, the writer lock and the final
append_row file.

Names are imported on first use: an entry-script process stages rows (`rows`) and must not pay
for fsspec and the output folder's machinery at every start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect_parallelrun.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .errors import OutputFolderInUseError, OutputFolderNotWritableError, ResumeRefusedError
    from .ledger import CODE, CommitRecord
    from .output_folder import OutputFolder
    from .rows import format_rows, stage_rows

_MODULE_OF = {
    "CODE": ".ledger",
    "CommitRecord": ".ledger",
    "OutputFolder": ".output_folder",
    "OutputFolderInUseError": ".errors",
    "OutputFolderNotWritableError": ".errors",
    "ResumeRefusedError": ".errors",
    "format_rows": ".rows",
    "stage_rows": ".rows",
}

__all__ = [
    "CODE",
    "CommitRecord",
    "OutputFolder",
    "OutputFolderInUseError",
    "OutputFolderNotWritableError",
    "ResumeRefusedError",
    "format_rows",
    "stage_rows",
]


__getattr__, __dir__ = lazy_exports(__name__, _MODULE_OF, globals())
