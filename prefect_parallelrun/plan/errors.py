"""Input errors: each names the input at fault and says how to fix it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .mini_batch import MiniBatch


class InputError(ValueError):
    """An input cannot be planned as given."""


class InputNotFoundError(InputError):
    """A path, folder, glob or URL matches nothing at all."""


class InputReadError(InputError):
    """A file of an input exists but cannot be read while planning."""


class CorruptInputError(InputError):
    """A file's structure (a Parquet footer, CSV quoting) cannot be split safely."""


class MixedInputKindsError(InputError):
    """File inputs and tabular inputs were given to the same job."""


class MiniBatchSizeError(InputError):
    """`mini_batch_size` does not fit the kind of input, or clashes with `partition_keys`."""


class PartitionFormatError(InputError):
    """A `partition_format` is malformed, or a file's path does not match it."""


class PartitionKeyError(InputError):
    """`partition_keys` names a field that neither the paths nor the columns have."""


class MiniBatchReadError(InputError):
    """A mini-batch's data cannot be loaded in the process that runs it."""


def mini_batch_read_error(
    mini_batch: MiniBatch, url: str, error: Exception
) -> MiniBatchReadError:
    """The error for a mini-batch whose data cannot be loaded, naming the file and the fix.

    Args:
        mini_batch: The mini-batch being loaded.
        url: The file that cannot be read.
        error: Why it cannot.

    Returns:
        The error, to raise.
    """
    return MiniBatchReadError(
        f"mini-batch {mini_batch.id} ({mini_batch.describe()}): cannot read {url} ({error}). "
        "Check that the file is still there, readable and not corrupt; if the input changed "
        "since the job was planned, run the job again with resume=False."
    )
