"""pyarrow reading shared by the planner (key columns only) and the loader (whole mini-batches).

Both sides go through these functions so that a partition value seen at plan time is the
same text that the loader's filter compares against.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from .byte_ranges import line_ends

STREAM_BLOCK_BYTES = 8 * 1024 * 1024
"""Block size when streaming a whole file; also how much of it CSV type inference sees."""
# Parsing runs single-threaded: a node already runs one entry-script process per core, and
# pyarrow's per-thread buffers would multiply a reading process's memory for little gain.
_FIRST_ROW = "__first_row__"


def csv_column_names(
    stream: BinaryIO, header_bytes: int, column_count: int | None, separator: str
) -> list[str]:
    """The header row's names, or Azure ML's `Column1..ColumnN` for a file without one."""
    if not header_bytes:
        return [f"Column{number}" for number in range(1, (column_count or 0) + 1)]
    stream.seek(0)
    return first_row(stream.read(header_bytes), separator).column_names


def first_row(data: bytes, separator: str) -> pa.Table:
    """Parse one CSV row as the header of an empty table."""
    return pa_csv.read_csv(io.BytesIO(data), parse_options=_csv_parse_options(separator))


def read_csv_bytes(data: bytes, names: list[str], separator: str) -> pa.Table:
    """Parse CSV rows (no header) that were cut on row boundaries."""
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
    """Stream a whole CSV file block by block, keeping only `columns` (None: all)."""
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
    """Parse JSON lines that were cut on line boundaries."""
    if not data.strip():
        return pa.table({})
    return pa_json.read_json(
        pa.BufferReader(data), read_options=pa_json.ReadOptions(use_threads=False)
    )


def iter_jsonl_tables(
    stream: BinaryIO, file_size: int, columns: Sequence[str] | None
) -> Iterator[pa.Table]:
    """Stream a whole JSON-lines file in line-aligned blocks, keeping only `columns`."""
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
    """Stream a Parquet file batch by batch, keeping only `columns`."""
    selected = None if columns is None else list(columns)
    for batch in parquet.iter_batches(columns=selected, use_threads=False):
        yield pa.Table.from_batches([batch])


def key_values(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Each distinct combination of `keys` as text, in order of first appearance, with its
    row count in a `count_all` column."""
    columns = {key: pc.cast(table[key], pa.string()) for key in keys}
    # group_by orders groups by first appearance except the null group, so sort explicitly.
    columns[_FIRST_ROW] = pa.array(np.arange(table.num_rows))
    groups = pa.table(columns).group_by(list(keys), use_threads=False)
    counted = groups.aggregate([([], "count_all"), (_FIRST_ROW, "min")])
    return counted.sort_by(f"{_FIRST_ROW}_min").drop_columns([f"{_FIRST_ROW}_min"])


def filter_rows(table: pa.Table, row_filter: dict[str, str | None]) -> pa.Table:
    """The rows whose key columns, as text, equal `row_filter` (None matches null; a JSON line
    without the field counts as null)."""
    mask = None
    for key, value in row_filter.items():
        present = key in table.column_names
        column = (
            pc.cast(table[key], pa.string()) if present else pa.nulls(table.num_rows, pa.string())
        )
        matches = (
            pc.is_null(column) if value is None else pc.fill_null(pc.equal(column, value), False)
        )
        mask = matches if mask is None else pc.and_(mask, matches)
    return table.filter(mask)


def add_path_fields(table: pa.Table, path_fields: dict[str, str]) -> pa.Table:
    """Append each path field as a string column, unless the data already has that column."""
    for name, value in path_fields.items():
        if name not in table.column_names:
            table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
    return table


def parquet_row_group_bytes(metadata: pq.FileMetaData, index: int) -> int:
    """A row group's size on disk (compressed), the bytes `mini_batch_size` counts."""
    row_group = metadata.row_group(index)
    return sum(
        row_group.column(column).total_compressed_size for column in range(row_group.num_columns)
    )


def _csv_parse_options(separator: str) -> pa_csv.ParseOptions:
    return pa_csv.ParseOptions(delimiter=separator, newlines_in_values=True)
