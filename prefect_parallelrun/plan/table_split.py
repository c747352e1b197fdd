"""Planning one tabular file: cutting it into parts of about `mini_batch_size` bytes.

Only metadata, the CSV header and (for column partition keys) the key columns are read here;
the data itself is read later by `open_mini_batch`, in the process that runs the mini-batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import BinaryIO

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from .byte_ranges import csv_row_ends, line_ends
from .datasets import TabularDataset
from .errors import CorruptInputError, InputReadError
from .table_io import first_row, parquet_row_group_bytes
from .table_part import TablePart


def split_table_file(
    url: str, size: int, dataset: TabularDataset, target_bytes: int, path_fields: dict[str, str]
) -> list[TablePart]:
    """Cut one file into parts of about `target_bytes`: byte ranges cut after a whole row
    (CSV, JSON lines) or runs of whole row groups (Parquet).

    Args:
        url: The file's local path or fsspec URL.
        size: Its size in bytes, as listed.
        dataset: The input it belongs to (format, separator, header).
        target_bytes: About how many bytes each part covers; a part never spans two files.
        path_fields: The file's partition fields, added to its rows when they are loaded.

    Returns:
        The parts, in file order; none for a file that holds no rows.

    Raises:
        InputReadError: The file cannot be opened.
        CorruptInputError: The file is not valid Parquet, or its CSV quoting is broken.
    """
    with open_for_planning(url) as stream:
        if dataset.format == "parquet":
            metadata = _parquet_metadata(stream, url)
            return _row_group_parts(_base_part(url, dataset, path_fields), metadata, target_bytes)
        whole = whole_file_part(stream, url, size, dataset, path_fields)
        if whole is None:
            return []
        start = whole.header_bytes
        stream.seek(start)
        if dataset.format == "csv":
            cuts = [start, *csv_row_ends(stream, start, target_bytes, url)]
        else:
            cuts = [start, *line_ends(stream, start, target_bytes, size)]
    if cuts[-1] < size:
        cuts.append(size)
    return [replace(whole, byte_range=cut) for cut in zip(cuts, cuts[1:], strict=False)]


@contextmanager
def open_for_planning(url: str) -> Iterator[BinaryIO]:
    """Open a file of an input to plan it: its metadata, header or key columns.

    Args:
        url: The file's local path or fsspec URL.

    Returns:
        A context manager giving the file as a binary stream.

    Raises:
        InputReadError: The file cannot be opened or read.
    """
    try:
        with fsspec.open(url, "rb") as stream:
            yield stream
    except OSError as error:
        raise InputReadError(
            f"cannot read {url} ({error}); check that it exists and that this user may read it."
        ) from error


def whole_file_part(
    stream: BinaryIO, url: str, size: int, dataset: TabularDataset, path_fields: dict[str, str]
) -> TablePart | None:
    """The part covering the whole file, with its layout: its header's length or its column
    count (CSV), or its row count (Parquet).

    Args:
        stream: The open file.
        url: Its local path or fsspec URL.
        size: Its size in bytes.
        dataset: The input it belongs to.
        path_fields: The file's partition fields.

    Returns:
        The part; None when the file holds no rows.

    Raises:
        CorruptInputError: The file is not valid Parquet, or its CSV quoting is broken.
    """
    part = _base_part(url, dataset, path_fields)
    if dataset.format == "parquet":
        rows = _parquet_metadata(stream, url).num_rows
        return replace(part, first_row=0, rows=rows) if rows else None
    if size == 0:
        return None
    if dataset.format == "jsonl":
        return part
    first_row_end = next(csv_row_ends(stream, 0, 1, url), size)
    if dataset.header:
        return replace(part, header_bytes=first_row_end) if first_row_end < size else None
    stream.seek(0)
    column_count = first_row(stream.read(first_row_end), dataset.separator).num_columns
    return replace(part, column_count=column_count)


def _base_part(url: str, dataset: TabularDataset, path_fields: dict[str, str]) -> TablePart:
    return TablePart(url, dataset.format, separator=dataset.separator, path_fields=path_fields)


def _parquet_metadata(stream: BinaryIO, url: str) -> pq.FileMetaData:
    try:
        stream.seek(0)
        return pq.ParquetFile(stream).metadata
    except pa.ArrowException as error:
        raise CorruptInputError(
            f"{url} is not a readable Parquet file ({error}); rewrite it, or remove it from "
            "the input."
        ) from error


def _row_group_parts(
    whole: TablePart, metadata: pq.FileMetaData, target_bytes: int
) -> list[TablePart]:
    """Consecutive row groups adding up to `target_bytes` or more (a big row group stays whole)."""
    parts: list[TablePart] = []
    groups: list[int] = []
    group_bytes = group_rows = first_row = 0
    for index in range(metadata.num_row_groups):
        rows = metadata.row_group(index).num_rows
        if rows == 0:
            continue
        groups.append(index)
        group_bytes += parquet_row_group_bytes(metadata, index)
        group_rows += rows
        if group_bytes >= target_bytes:
            parts.append(
                replace(whole, row_groups=tuple(groups), first_row=first_row, rows=group_rows)
            )
            first_row += group_rows
            groups, group_bytes, group_rows = [], 0, 0
    if groups:
        parts.append(replace(whole, row_groups=tuple(groups), first_row=first_row, rows=group_rows))
    return parts
