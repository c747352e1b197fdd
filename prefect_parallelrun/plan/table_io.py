"""pyarrow reading shared by the planner (key columns only) and the loader (whole mini-batches).

Which rows a partition holds is `table_rows`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from .byte_ranges import line_ends

STREAM_BLOCK_BYTES = 8 * 1024 * 1024
"""Block size when streaming a whole file; also how much of it CSV type inference sees."""
# Parsing runs single-threaded: a node already runs one entry-script process per core, and
# pyarrow's per-thread buffers would multiply a reading process's memory for little gain.


def csv_column_names(
    stream: BinaryIO, header_bytes: int, column_count: int | None, separator: str
) -> list[str]:
    """The header row's names, or Azure ML's `Column1..ColumnN` for a file without one.

    Args:
        stream: The CSV file (seekable).
        header_bytes: Length of its header row; 0 when it has none.
        column_count: Its column count, for a file without a header.
        separator: The field separator.

    Returns:
        The column names.
    """
    if not header_bytes:
        return [f"Column{number}" for number in range(1, (column_count or 0) + 1)]
    stream.seek(0)
    return first_row(stream.read(header_bytes), separator).column_names


def first_row(data: bytes, separator: str) -> pa.Table:
    """Parse one CSV row as the header of an empty table.

    Args:
        data: The row's bytes.
        separator: The field separator.

    Returns:
        A table without rows whose column names are the row's fields.

    Raises:
        pyarrow.ArrowInvalid: The row cannot be parsed.
    """
    return pa_csv.read_csv(io.BytesIO(data), parse_options=_csv_parse_options(separator))


def read_csv_bytes(data: bytes, names: list[str], separator: str) -> pa.Table:
    """Parse CSV rows (no header) that were cut on row boundaries.

    Args:
        data: The rows' bytes.
        names: The column names.
        separator: The field separator.

    Returns:
        The rows, types inferred; all-string and empty when `data` is blank.

    Raises:
        pyarrow.ArrowInvalid: The rows cannot be parsed.
    """
    if not data.strip():
        return pa.table({name: pa.array([], pa.string()) for name in names})
    return pa_csv.read_csv(
        pa.BufferReader(data),
        read_options=pa_csv.ReadOptions(column_names=names, use_threads=False),
        parse_options=_csv_parse_options(separator),
    )


def iter_csv_tables(
    stream: BinaryIO,
    header_bytes: int,
    names: list[str],
    separator: str,
    columns: Sequence[str] | None,
    string_columns: Sequence[str],
) -> Iterator[pa.Table]:
    """Stream a whole CSV file block by block, keeping only `columns` (None: all).

    Args:
        stream: The CSV file (seekable).
        header_bytes: Length of its header row, skipped; 0 when it has none.
        names: The column names.
        separator: The field separator.
        columns: The columns to keep; None for all.
        string_columns: Columns read as text, never inferred (partition keys).

    Returns:
        An iterator of tables, one per block of about `STREAM_BLOCK_BYTES`.

    Raises:
        pyarrow.ArrowInvalid: A block cannot be parsed.
    """
    stream.seek(header_bytes)
    reader = pa_csv.open_csv(
        stream,
        read_options=pa_csv.ReadOptions(
            column_names=names, block_size=STREAM_BLOCK_BYTES, use_threads=False
        ),
        parse_options=_csv_parse_options(separator),
        convert_options=pa_csv.ConvertOptions(
            include_columns=list(columns or []),
            column_types={name: pa.string() for name in string_columns},
        ),
    )
    for batch in reader:
        yield pa.Table.from_batches([batch])


def read_jsonl_bytes(data: bytes) -> pa.Table:
    """Parse JSON lines that were cut on line boundaries.

    Args:
        data: The lines' bytes.

    Returns:
        The rows; a table without columns when `data` is blank.

    Raises:
        pyarrow.ArrowInvalid: A line is not a JSON object.
    """
    if not data.strip():
        return pa.table({})
    return pa_json.read_json(
        pa.BufferReader(data), read_options=pa_json.ReadOptions(use_threads=False)
    )


def iter_jsonl_tables(
    stream: BinaryIO, file_size: int, columns: Sequence[str] | None
) -> Iterator[pa.Table]:
    """Stream a whole JSON-lines file in line-aligned blocks, keeping only `columns`.

    Args:
        stream: The file (seekable).
        file_size: Its size in bytes.
        columns: The fields to keep, null where a block has none; None for all.

    Returns:
        An iterator of tables, one per block of about `STREAM_BLOCK_BYTES`.

    Raises:
        pyarrow.ArrowInvalid: A line is not a JSON object.
    """
    cuts = [0, *line_ends(stream, 0, STREAM_BLOCK_BYTES, file_size), file_size]
    for start, end in zip(cuts, cuts[1:], strict=False):
        if start == end:
            continue
        stream.seek(start)
        table = read_jsonl_bytes(stream.read(end - start))
        yield table if columns is None else _select_or_null(table, columns)


def _select_or_null(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """`columns` of a JSON-lines block; a field no line of the block has is all null."""
    return pa.table(
        {
            name: table[name] if name in table.column_names else pa.nulls(table.num_rows)
            for name in columns
        }
    )


def iter_parquet_tables(
    parquet: pq.ParquetFile, columns: Sequence[str] | None
) -> Iterator[pa.Table]:
    """Stream a Parquet file batch by batch, keeping only `columns`.

    Args:
        parquet: The open Parquet file.
        columns: The columns to keep; None for all.

    Returns:
        An iterator of tables, one per record batch.
    """
    selected = None if columns is None else list(columns)
    for batch in parquet.iter_batches(columns=selected, use_threads=False):
        yield pa.Table.from_batches([batch])


def parquet_row_group_bytes(metadata: pq.FileMetaData, index: int) -> int:
    """A row group's size on disk (compressed), the bytes `mini_batch_size` counts.

    Args:
        metadata: The Parquet file's metadata.
        index: The row group's index.

    Returns:
        The compressed size of its column chunks, in bytes.
    """
    row_group = metadata.row_group(index)
    return sum(
        row_group.column(column).total_compressed_size for column in range(row_group.num_columns)
    )


def _csv_parse_options(separator: str) -> pa_csv.ParseOptions:
    return pa_csv.ParseOptions(delimiter=separator, newlines_in_values=True)
