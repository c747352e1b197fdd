"""Planning one tabular file: cutting it into parts, or grouping its rows by partition key.

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
from .errors import CorruptInputError, InputReadError, PartitionKeyError
from .mini_batch import TablePart
from .table_io import (
    csv_column_names,
    first_row,
    iter_csv_tables,
    iter_jsonl_tables,
    iter_parquet_tables,
    key_values,
    parquet_row_group_bytes,
)


def split_table_file(
    url: str, size: int, dataset: TabularDataset, target_bytes: int, path_fields: dict[str, str]
) -> list[TablePart]:
    """Cut one file into parts of about `target_bytes`; an empty file gives none."""
    with _open_for_planning(url) as stream:
        if dataset.format == "parquet":
            metadata = _parquet_metadata(stream, url)
            return _row_group_parts(_base_part(url, dataset, path_fields), metadata, target_bytes)
        whole = _whole_file_part(stream, url, size, dataset, path_fields)
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


def partition_table_file(
    url: str,
    size: int,
    dataset: TabularDataset,
    partition_keys: list[str],
    path_fields: dict[str, str],
) -> list[tuple[dict[str, str], TablePart]]:
    """One part per distinct combination of `partition_keys` in the file, in order of first
    appearance. Keys that are path fields need no reading; the others are columns, read
    block by block, and become the part's row filter."""
    column_keys = [key for key in partition_keys if key not in path_fields]
    with _open_for_planning(url) as stream:
        whole = _whole_file_part(stream, url, size, dataset, path_fields)
        if whole is None:
            return []
        if not column_keys:
            return [({key: path_fields[key] for key in partition_keys}, whole)]
        row_counts = _count_key_values(stream, url, size, dataset, whole, column_keys)
    parts = []
    for values, rows in row_counts.items():
        row_filter = dict(zip(column_keys, values, strict=True))
        partition = {
            key: path_fields[key] if key in path_fields else row_filter[key] or ""
            for key in partition_keys
        }
        parts.append((partition, replace(whole, row_filter=row_filter, rows=rows, first_row=None)))
    return parts


@contextmanager
def _open_for_planning(url: str) -> Iterator[BinaryIO]:
    try:
        with fsspec.open(url, "rb") as stream:
            yield stream
    except OSError as error:
        raise InputReadError(
            f"cannot read {url} ({error}); check that it exists and that this user may read it."
        ) from error


def _whole_file_part(
    stream: BinaryIO, url: str, size: int, dataset: TabularDataset, path_fields: dict[str, str]
) -> TablePart | None:
    """The part covering the whole file, with its layout; None when the file holds no rows."""
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


def _count_key_values(
    stream: BinaryIO,
    url: str,
    size: int,
    dataset: TabularDataset,
    whole: TablePart,
    column_keys: list[str],
) -> dict[tuple[str | None, ...], int]:
    columns = _known_columns(stream, dataset, whole)
    if columns is not None:
        missing = [key for key in column_keys if key not in columns]
        _check_keys(url, whole, missing, f"its columns are {columns}")
    counts: dict[tuple[str | None, ...], int] = {}
    for table in _key_tables(stream, url, size, dataset, whole, column_keys, columns):
        for row in key_values(table, column_keys).to_pylist():
            values = tuple(row[key] for key in column_keys)
            counts[values] = counts.get(values, 0) + row["count_all"]
    if columns is None:
        never_set = [
            key
            for position, key in enumerate(column_keys)
            if all(values[position] is None for values in counts)
        ]
        _check_keys(url, whole, never_set, "no line has a value for them")
    return counts


def _check_keys(url: str, whole: TablePart, missing: list[str], columns_found: str) -> None:
    if missing:
        raise PartitionKeyError(
            f"partition_keys {missing} are neither path fields of {url} "
            f"({sorted(whole.path_fields) or 'none'}) nor columns of it ({columns_found}); use "
            "those names, or add the field to partition_format."
        )


def _known_columns(stream: BinaryIO, dataset: TabularDataset, whole: TablePart) -> list[str] | None:
    """The file's column names, or None for JSON lines, whose lines may differ in fields."""
    if dataset.format == "parquet":
        stream.seek(0)
        return pq.ParquetFile(stream).schema_arrow.names
    if dataset.format == "csv":
        return csv_column_names(stream, whole.header_bytes, whole.column_count, whole.separator)
    return None


def _key_tables(
    stream: BinaryIO,
    url: str,
    size: int,
    dataset: TabularDataset,
    whole: TablePart,
    column_keys: list[str],
    columns: list[str] | None,
) -> Iterator[pa.Table]:
    try:
        if dataset.format == "parquet":
            stream.seek(0)
            yield from iter_parquet_tables(pq.ParquetFile(stream), column_keys)
        elif dataset.format == "csv":
            yield from iter_csv_tables(
                stream, whole.header_bytes, columns or [], whole.separator, column_keys, column_keys
            )
        else:
            yield from iter_jsonl_tables(stream, size, column_keys)
    except pa.ArrowInvalid as error:
        raise CorruptInputError(
            f"cannot read the partition key columns {column_keys} of {url} ({error}); "
            "fix the file, or partition by path fields instead."
        ) from error
