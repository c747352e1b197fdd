"""Planning one tabular file by partition key: one part per distinct combination of values.

Keys that are path fields need no reading; key columns are read block by block (only those
columns), and each combination's rows become a part with a row filter, loaded later by
`open_mini_batch`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from .datasets import TabularDataset
from .errors import CorruptInputError, PartitionKeyError
from .table_io import (
    csv_column_names,
    iter_csv_tables,
    iter_jsonl_tables,
    iter_parquet_tables,
)
from .table_part import TablePart
from .table_rows import key_values
from .table_split import open_for_planning, whole_file_part


def partition_table_file(
    url: str,
    size: int,
    dataset: TabularDataset,
    partition_keys: list[str],
    path_fields: dict[str, str],
) -> list[tuple[dict[str, str], TablePart]]:
    """One part per distinct combination of `partition_keys` in the file, in order of first
    appearance. Keys that are path fields need no reading; the others are columns, read
    block by block, and become the part's row filter.

    Args:
        url: The file's local path or fsspec URL.
        size: Its size in bytes, as listed.
        dataset: The input it belongs to (format, separator, header).
        partition_keys: The keys that group rows into mini-batches.
        path_fields: The file's partition fields.

    Returns:
        `(partition, part)` pairs: the key values (as text; "" for null) and the part holding
        the rows that have them; none for a file that holds no rows.

    Raises:
        InputReadError: The file cannot be opened.
        CorruptInputError: The file or its key columns cannot be read.
        PartitionKeyError: A key is neither a path field nor a column of the file.
    """
    column_keys = [key for key in partition_keys if key not in path_fields]
    with open_for_planning(url) as stream:
        whole = whole_file_part(stream, url, size, dataset, path_fields)
        if whole is None:
            return []
        if not column_keys:
            return [({key: path_fields[key] for key in partition_keys}, whole)]
        row_counts = _count_key_values(_OpenFile(stream, url, size, dataset, whole), column_keys)
    parts = []
    for values, rows in row_counts.items():
        row_filter = dict(zip(column_keys, values, strict=True))
        partition = {
            key: path_fields[key] if key in path_fields else row_filter[key] or ""
            for key in partition_keys
        }
        parts.append((partition, replace(whole, row_filter=row_filter, rows=rows, first_row=None)))
    return parts


@dataclass(frozen=True)
class _OpenFile:
    """A file being read for its partition key columns, with its layout."""

    stream: BinaryIO
    url: str
    size: int
    dataset: TabularDataset
    whole: TablePart


def _count_key_values(
    file: _OpenFile, column_keys: list[str]
) -> dict[tuple[str | None, ...], int]:
    columns = _known_columns(file)
    if columns is not None:
        missing = [key for key in column_keys if key not in columns]
        _check_keys(file, missing, f"its columns are {columns}")
    counts: dict[tuple[str | None, ...], int] = {}
    for table in _key_tables(file, column_keys, columns):
        for row in key_values(table, column_keys).to_pylist():
            values = tuple(row[key] for key in column_keys)
            counts[values] = counts.get(values, 0) + row["count_all"]
    if columns is None:
        never_set = [
            key
            for position, key in enumerate(column_keys)
            if all(values[position] is None for values in counts)
        ]
        _check_keys(file, never_set, "no line has a value for them")
    return counts


def _check_keys(file: _OpenFile, missing: list[str], columns_found: str) -> None:
    if missing:
        raise PartitionKeyError(
            f"partition_keys {missing} are neither path fields of {file.url} "
            f"({sorted(file.whole.path_fields) or 'none'}) nor columns of it "
            f"({columns_found}); use those names, or add the field to partition_format."
        )


def _known_columns(file: _OpenFile) -> list[str] | None:
    """The file's column names, or None for JSON lines, whose lines may differ in fields."""
    whole = file.whole
    if file.dataset.format == "parquet":
        file.stream.seek(0)
        return pq.ParquetFile(file.stream).schema_arrow.names
    if file.dataset.format == "csv":
        return csv_column_names(
            file.stream, whole.header_bytes, whole.column_count, whole.separator
        )
    return None


def _key_tables(
    file: _OpenFile, column_keys: list[str], columns: list[str] | None
) -> Iterator[pa.Table]:
    stream, whole = file.stream, file.whole
    try:
        if file.dataset.format == "parquet":
            stream.seek(0)
            yield from iter_parquet_tables(pq.ParquetFile(stream), column_keys)
        elif file.dataset.format == "csv":
            yield from iter_csv_tables(
                stream, whole.header_bytes, columns or [], whole.separator, column_keys, column_keys
            )
        else:
            yield from iter_jsonl_tables(stream, file.size, column_keys)
    except pa.ArrowInvalid as error:
        raise CorruptInputError(
            f"cannot read the partition key columns {column_keys} of {file.url} ({error}); "
            "fix the file, or partition by path fields instead."
        ) from error
