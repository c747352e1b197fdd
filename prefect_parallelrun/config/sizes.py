"""Parsing of `mini_batch_size`: a file count for file inputs, approximate bytes for tables."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*(KB|MB|GB)?\s*$", re.IGNORECASE)
ACCEPTED_FORMS = 'an integer, or a string like "1024", "1024 KB", "10MB" or "1 GB" (binary units)'

DEFAULT_FILES_PER_MINI_BATCH = 10
DEFAULT_BYTES_PER_MINI_BATCH = 1024**2


@dataclass(frozen=True)
class MiniBatchSize:
    """A parsed `mini_batch_size`: `value` is a count, or bytes when `has_unit` is true."""

    value: int
    has_unit: bool


def parse_mini_batch_size(raw: int | str) -> MiniBatchSize:
    """Parse `mini_batch_size`: a count, or bytes with a KB, MB or GB unit (binary units).

    Args:
        raw: An integer, or a string such as `"1024"`, `"1024 KB"`, `"10MB"` or `"1 GB"`.

    Returns:
        The count or the number of bytes, and whether a unit was given.

    Raises:
        ValueError: `raw` is not one of the accepted forms (the message lists them), or is
            not greater than 0.
    """
    if isinstance(raw, bool):
        raise ValueError(f"mini_batch_size must be {ACCEPTED_FORMS}; got {raw!r}.")
    if isinstance(raw, int):
        if raw <= 0:
            raise ValueError(f"mini_batch_size must be greater than 0; got {raw}.")
        return MiniBatchSize(raw, has_unit=False)
    if not isinstance(raw, str):
        raise ValueError(f"mini_batch_size must be {ACCEPTED_FORMS}; got {raw!r}.")
    match = _SIZE_PATTERN.match(raw)
    if match is None:
        raise ValueError(f"mini_batch_size must be {ACCEPTED_FORMS}; got {raw!r}.")
    number, unit = int(match.group(1)), (match.group(2) or "").upper()
    if number <= 0:
        raise ValueError(f"mini_batch_size must be greater than 0; got {raw!r}.")
    return MiniBatchSize(number * _UNITS[unit], has_unit=bool(unit))
