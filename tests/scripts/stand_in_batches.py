"""Stand-in mini-batches for the execute tests: the plan stage's shape, without its imports.

A mini-batch is a few small files whose text tells `behaviours.py` what to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class StandInMiniBatch:
    index: int
    id: str
    files: tuple[str, ...]
    partition_key_value: dict[str, str] | None = None

    @property
    def item_count(self) -> int:
        return len(self.files)

    def describe(self) -> str:
        return f"{len(self.files)} files: {', '.join(os.path.basename(f) for f in self.files)}"


@contextmanager
def open_stand_in(mini_batch: StandInMiniBatch, scratch_dir: str) -> Iterator[list[str]]:
    missing = [path for path in mini_batch.files if not os.path.exists(path)]
    if missing:
        raise FileNotFoundError(f"cannot read {missing[0]}")
    yield list(mini_batch.files)
