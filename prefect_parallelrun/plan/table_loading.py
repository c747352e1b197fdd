"""Loading a tabular mini-batch: just its byte range, row groups or partition rows."""

from __future__ import annotations

import os
from typing import BinaryIO

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import mini_batch_read_error
from .mini_batch import MiniBatch
from .table_io import (
    csv_column_names,
    iter_csv_tables,
    iter_jsonl_tables,
    iter_parquet_tables,
    read_csv_bytes,
    read_jsonl_bytes,
)
from .table_part import TablePart
from .table_rows import add_path_fields, filter_rows


def load_table(mini_batch: MiniBatch) -> pd.DataFrame:
    """The rows of a tabular mini-batch, its parts in order, with their path fields.

    Args:
        mini_batch: A tabular mini-batch.

    Returns:
        The rows as one DataFrame; parts whose columns differ are combined (missing as null).

    Raises:
        MiniBatchReadError: A part's file cannot be read or parsed; the message names it.
    """
    tables = []
    for part in mini_batch.table_parts:
        try:
            tables.append(add_path_fields(_read_part(part), part.path_fields))
        except (OSError, pa.ArrowException) as error:
            raise mini_batch_read_error(mini_batch, part.url, error) from error
    table = (
        tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    )
    return table.to_pandas()


def _read_part(part: TablePart) -> pa.Table:
    with fsspec.open(part.url, "rb") as stream:
        if part.row_filter is not None:
            return _read_filtered(part, stream)
        if part.format == "parquet":
            parquet = pq.ParquetFile(stream)
            if part.row_groups is None:
                return parquet.read(use_threads=False)
            return parquet.read_row_groups(list(part.row_groups), use_threads=False)
        start, end = part.byte_range or (part.header_bytes, _size(stream))
        if part.format == "jsonl":
            stream.seek(start)
            return read_jsonl_bytes(stream.read(end - start))
        names = csv_column_names(stream, part.header_bytes, part.column_count, part.separator)
        stream.seek(start)
        return read_csv_bytes(stream.read(end - start), names, part.separator)


def _size(stream: BinaryIO) -> int:
    return stream.seek(0, os.SEEK_END)


def _read_filtered(part: TablePart, stream: BinaryIO) -> pa.Table:
    """Stream the whole file, keeping only the partition's rows: memory grows with the
    partition, not the file."""
    row_filter = part.row_filter or {}
    if part.format == "parquet":
        blocks = iter_parquet_tables(pq.ParquetFile(stream), None)
    elif part.format == "jsonl":
        blocks = iter_jsonl_tables(stream, _size(stream), None)
    else:
        names = csv_column_names(stream, part.header_bytes, part.column_count, part.separator)
        blocks = iter_csv_tables(
            stream, part.header_bytes, names, part.separator, None, list(row_filter)
        )
    kept = [filter_rows(block, row_filter) for block in blocks]
    return pa.concat_tables(kept, promote_options="permissive")
