"""The plan stage: inputs become small, stable mini-batch descriptors; no data is read here.

`plan_job` lists and splits the inputs; `open_mini_batch` loads one mini-batch's data later,
in the process that runs it.
"""

from .datasets import FileDataset, TabularDataset
from .errors import (
    CorruptInputError,
    InputError,
    InputNotFoundError,
    InputReadError,
    MiniBatchReadError,
    MiniBatchSizeError,
    MixedInputKindsError,
    PartitionFormatError,
    PartitionKeyError,
)
from .loading import open_mini_batch
from .mini_batch import JobPlan, MiniBatch, TablePart
from .planner import plan_job

__all__ = [
    "CorruptInputError",
    "FileDataset",
    "InputError",
    "InputNotFoundError",
    "InputReadError",
    "JobPlan",
    "MiniBatch",
    "MiniBatchReadError",
    "MiniBatchSizeError",
    "MixedInputKindsError",
    "PartitionFormatError",
    "PartitionKeyError",
    "TablePart",
    "TabularDataset",
    "open_mini_batch",
    "plan_job",
]
