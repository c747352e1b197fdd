"""`open_mini_batch`: the data one `run()` call receives, loaded in the process that runs it."""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import MiniBatchReadError
from .listing import is_remote
from .mini_batch import MiniBatch, TablePart
from .table_io import (
    add_path_fields,
    csv_column_names,
    filter_rows,
    iter_csv_tables,
    iter_jsonl_tables,
    iter_parquet_tables,
    read_csv_bytes,
    read_jsonl_bytes,
)


@contextmanager
def open_mini_batch(mini_batch: MiniBatch, scratch_dir: str) -> Iterator[list[str] | pd.DataFrame]:
    """Yield what `run()` receives for `mini_batch`; `len()` of it is the item count.

    File inputs give a list of local absolute paths: remote files are fetched into
    `scratch_dir/<mini-batch id>/` first, keeping their paths below the folder they share, and
    that folder is removed on exit. Tabular inputs give a DataFrame of just the mini-batch's
    byte range, row groups or partition rows. Raise MiniBatchReadError when the data cannot
    be loaded.
    """
    if mini_batch.kind == "tabular":
        yield _load_table(mini_batch)
        return
    folder = os.path.join(scratch_dir, mini_batch.id)
    try:
        yield _local_files(mini_batch, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read_error(mini_batch: MiniBatch, url: str, error: Exception) -> MiniBatchReadError:
    return MiniBatchReadError(
        f"mini-batch {mini_batch.id} ({mini_batch.describe()}): cannot read {url} ({error}). "
        "Check that the file is still there, readable and not corrupt; if the input changed "
        "since the job was planned, run the job again with resume=False."
    )


def _local_files(mini_batch: MiniBatch, folder: str) -> list[str]:
    remote = [url for url in mini_batch.files if is_remote(url)]
    fetched = dict(zip(remote, _fetch(mini_batch, remote, folder), strict=True))
    paths = []
    for url in mini_batch.files:
        path = fetched.get(url, url)
        if not os.access(path, os.R_OK):
            reason = "no such file" if not os.path.exists(path) else "permission denied"
            raise _read_error(mini_batch, url, FileNotFoundError(reason))
        paths.append(path)
    return paths


def _fetch(mini_batch: MiniBatch, urls: list[str], folder: str) -> list[str]:
    """Copy `urls` under `folder`, each at its path below the folder all of them share."""
    if not urls:
        return []
    paths = ["/" + url.split("://", 1)[-1].lstrip("/") for url in urls]
    shared = posixpath.commonpath([posixpath.dirname(path) for path in paths])
    destinations = [os.path.join(folder, posixpath.relpath(path, shared)) for path in paths]
    for url, destination in zip(urls, destinations, strict=True):
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        try:
            filesystem, remote_path = fsspec.core.url_to_fs(url)
            filesystem.get_file(remote_path, destination)
        except OSError as error:
            raise _read_error(mini_batch, url, error) from error
    return destinations


def _load_table(mini_batch: MiniBatch) -> pd.DataFrame:
    tables = []
    for part in mini_batch.table_parts:
        try:
            tables.append(add_path_fields(_read_part(part), part.path_fields))
        except (OSError, pa.ArrowException) as error:
            raise _read_error(mini_batch, part.url, error) from error
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
