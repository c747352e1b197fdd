"""How a `run()` result becomes append_row lines, and how those lines are staged for commit.

The format is Azure ML's: a list or tuple element is written as `str(element)` on its own line;
a DataFrame row as its values joined by single spaces, with no header and no index.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import fsspec
    import pandas as pd

# Object stores (fsspec protocols): a write is atomic, a rename is a copy plus a delete, and
# there are no folders to make.
OBJECT_STORES = frozenset({"s3", "s3a", "abfs", "abfss", "az", "gs", "gcs"})


def protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    """The fsspec protocols of `fs` (one filesystem may have several names, as `s3`/`s3a`).

    Args:
        fs: Any fsspec filesystem.

    Returns:
        Its protocol names.
    """
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def format_rows(result: Sequence[Any] | pd.DataFrame, limit: int) -> Iterator[str]:
    """Yield the first `limit` rows of a `run()` result as append_row lines (no newline).

    Args:
        result: What `run()` returned: a list, a tuple or a pandas DataFrame.
        limit: The most rows to yield (the mini-batch's item count).

    Returns:
        An iterator of the lines, without newlines.
    """
    # A DataFrame exists only where pandas was imported: processes reading only files need
    # not pay for importing it.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(result, pandas.DataFrame):
        for values in result.head(limit).itertuples(index=False, name=None):
            yield " ".join(str(value) for value in values)
        return
    for element in result[:limit]:
        yield str(element)


def stage_rows(staging_dir: str, mini_batch_id: str, attempt: int, lines: Iterator[str]) -> str:
    """Write `lines` to a new staged part file under `staging_dir` and return its URL.

    The name is unique per write, so two attempts of one mini-batch (a retry racing a
    timed-out attempt, or a mini-batch run twice after a lost worker) never share a file;
    only the flow's commit step decides which staged file becomes the mini-batch's part.

    Args:
        staging_dir: The output folder's staging folder (`OutputFolder.staging_dir`): a local
            path or an fsspec URL.
        mini_batch_id: The mini-batch's id.
        attempt: The attempt's number.
        lines: The rows, without newlines (`format_rows`).

    Returns:
        The staged file's URL (a local path for a local folder), for `OutputFolder.commit`.

    Raises:
        OSError: The rows cannot be written.
    """
    name = f"{mini_batch_id}.attempt-{attempt}.{uuid.uuid4().hex}.rows"
    if "://" not in staging_dir:
        # A local folder: plain files, so that an entry-script process need not import
        # fsspec (a third of its start-up) to stage rows.
        os.makedirs(staging_dir, exist_ok=True)
        path = os.path.join(staging_dir, name)
        with open(path, "w", encoding="utf-8") as staged:
            _write(staged, lines)
        return path
    import fsspec

    fs, root = fsspec.core.url_to_fs(staging_dir)
    path = f"{root.rstrip('/')}/{name}"
    if OBJECT_STORES & set(protocols(fs)):
        # One request: the whole part in one write.
        fs.pipe_file(path, "".join(f"{line}\n" for line in lines).encode("utf-8"))
        return fs.unstrip_protocol(path)
    fs.makedirs(root, exist_ok=True)
    with fs.open(path, "w", encoding="utf-8") as staged:
        _write(staged, lines)
    return fs.unstrip_protocol(path)


def _write(staged: TextIO, lines: Iterator[str]) -> None:
    for line in lines:
        staged.write(line)
        staged.write("\n")
