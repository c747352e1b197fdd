"""Errors of the commit stage."""


class ResumeRefusedError(ValueError):
    """The output folder belongs to a different job; resuming it would mix two jobs' rows."""
