"""The plan stage: inputs become small, stable mini-batch descriptors; no data is read here.

`plan_job` lists and splits the inputs; `open_mini_batch` loads one mini-batch's data later,
in the process that runs it. Names are imported on first use: an entry-script process needs
only `open_mini_batch` and the descriptors, not the planner's pyarrow and pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect_parallelrun.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .datasets import Dataset, FileDataset, TabularDataset
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
    from .mini_batch import JobPlan, MiniBatch
    from .planner import plan_job
    from .table_part import TablePart

_MODULE_OF = {
    "CorruptInputError": ".errors",
    "Dataset": ".datasets",
    "FileDataset": ".datasets",
    "InputError": ".errors",
    "InputNotFoundError": ".errors",
    "InputReadError": ".errors",
    "JobPlan": ".mini_batch",
    "MiniBatch": ".mini_batch",
    "MiniBatchReadError": ".errors",
    "MiniBatchSizeError": ".errors",
    "MixedInputKindsError": ".errors",
    "PartitionFormatError": ".errors",
    "PartitionKeyError": ".errors",
    "TablePart": ".table_part",
    "TabularDataset": ".datasets",
    "open_mini_batch": ".loading",
    "plan_job": ".planner",
}

__all__ = [
    "CorruptInputError",
    "Dataset",
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


__getattr__, __dir__ = lazy_exports(__name__, _MODULE_OF, globals())
