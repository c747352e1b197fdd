"""Errors of the commit stage."""


class ResumeRefusedError(ValueError):
    """The output folder belongs to a different job; resuming it would mix two jobs' rows."""


class OutputFolderInUseError(OSError):
    """Another run, still alive, writes to the output folder; two writers would mix their rows.

    An `OSError`, like `FileExistsError`: the folder is a resource another process holds."""


class OutputFolderNotWritableError(OSError):
    """The output folder cannot be created or written (a part of its path is a file, a
    read-only or full filesystem); the message names the folder and the system's reason."""
