"""Errors of the commit stage."""


class ResumeRefusedError(ValueError):
    """The output folder belongs to a different job; resuming it would mix two jobs' rows."""


class OutputFolderInUseError(OSError):
    """Another run, still alive, writes to the output folder; two writers would mix their rows.

    An `OSError`, like `FileExistsError`: the folder is a resource another process holds."""
