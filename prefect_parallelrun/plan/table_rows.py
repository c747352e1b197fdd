"""Rows by partition key, shared by the planner (counting) and the loader (filtering).

Both sides go through these functions so that a partition value seen at plan time is the
same text that the loader's filter compares against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_FIRST_ROW = "__first_row__"


def key_values(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Each distinct combination of `keys` as text, in order of first appearance, with its
    row count.

    Args:
        table: Rows holding the `keys` columns.
        keys: The partition key columns.

    Returns:
        One row per combination: the keys' values as text (null stays null) and `count_all`.
    """
    columns = {key: pc.cast(table[key], pa.string()) for key in keys}
    # group_by orders groups by first appearance except the null group, so sort explicitly.
    columns[_FIRST_ROW] = pa.array(np.arange(table.num_rows))
    groups = pa.table(columns).group_by(list(keys), use_threads=False)
    counted = groups.aggregate([([], "count_all"), (_FIRST_ROW, "min")])
    return counted.sort_by(f"{_FIRST_ROW}_min").drop_columns([f"{_FIRST_ROW}_min"])


def filter_rows(table: pa.Table, row_filter: dict[str, str | None]) -> pa.Table:
    """The rows whose key columns, as text, equal `row_filter`.

    Args:
        table: Rows of one part's file.
        row_filter: Column -> value as text; None matches null, and a JSON line without the
            field counts as null.

    Returns:
        The matching rows.
    """
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
    """Append each path field as a string column, unless the data already has that column.

    Args:
        table: The rows of one part.
        path_fields: Field name -> value, from the file's path.

    Returns:
        The table with the added columns.
    """
    for name, value in path_fields.items():
        if name not in table.column_names:
            table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
    return table
