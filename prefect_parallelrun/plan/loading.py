"""`open_mini_batch`: the data one `run()` call receives, loaded in the process that runs it."""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .errors import mini_batch_read_error
from .listing import is_remote
from .mini_batch import MiniBatch

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def open_mini_batch(mini_batch: MiniBatch, scratch_dir: str) -> Iterator[list[str] | pd.DataFrame]:
    """Yield what `run()` receives for `mini_batch`; `len()` of it is the item count.

    File inputs give a list of local absolute paths: remote files are fetched into
    `scratch_dir/<mini-batch id>/` first, keeping their paths below the folder they share, and
    that folder is removed on exit. Tabular inputs give a DataFrame of just the mini-batch's
    byte range, row groups or partition rows.

    Args:
        mini_batch: The mini-batch to load.
        scratch_dir: A local folder for fetched remote files.

    Returns:
        A context manager giving the list of local paths, or the DataFrame.

    Raises:
        MiniBatchReadError: A file is gone, unreadable or corrupt; the message names it.
    """
    if mini_batch.kind == "tabular":
        # Imported here: pandas and pyarrow cost an entry-script process that reads only
        # files most of a second at every start.
        from .table_loading import load_table

        yield load_table(mini_batch)
        return
    folder = os.path.join(scratch_dir, mini_batch.id)
    try:
        yield _local_files(mini_batch, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _local_files(mini_batch: MiniBatch, folder: str) -> list[str]:
    remote = [url for url in mini_batch.files if is_remote(url)]
    fetched = dict(zip(remote, _fetch(mini_batch, remote, folder), strict=True))
    paths = []
    for url in mini_batch.files:
        path = fetched.get(url, url)
        if not os.access(path, os.R_OK):
            reason = "no such file" if not os.path.exists(path) else "permission denied"
            raise mini_batch_read_error(mini_batch, url, FileNotFoundError(reason))
        paths.append(path)
    return paths


def _fetch(mini_batch: MiniBatch, urls: list[str], folder: str) -> list[str]:
    """Copy `urls` under `folder`, each at its path below the folder all of them share."""
    if not urls:
        return []
    paths = ["/" + url.split("://", 1)[-1].lstrip("/") for url in urls]
    shared = posixpath.commonpath([posixpath.dirname(path) for path in paths])
    destinations = [os.path.join(folder, posixpath.relpath(path, shared)) for path in paths]
    import fsspec  # here: processes that read only local files never need it

    for url, destination in zip(urls, destinations, strict=True):
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        try:
            filesystem, remote_path = fsspec.core.url_to_fs(url)
            filesystem.get_file(remote_path, destination)
        except OSError as error:
            raise mini_batch_read_error(mini_batch, url, error) from error
    return destinations
