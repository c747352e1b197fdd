"""One file's share of a tabular mini-batch: a small, picklable descriptor, no data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TableFormat = Literal["csv", "parquet", "jsonl"]


@dataclass(frozen=True)
class TablePart:
    """One file's share of a tabular mini-batch: a byte range, some row groups, the rows that
    match `row_filter`, or (when all of those are None) the whole file.

    Args:
        url: The file's local path or fsspec URL.
        format: The file's format.
        byte_range: `[start, end)` in bytes, cut after a newline (CSV and JSON lines).
        row_groups: The Parquet row groups of the part.
        first_row: The file-wide index of the part's first row, when known.
        rows: The part's row count, when metadata knows it.
        header_bytes: Length of a CSV file's header row, re-read for every byte range; 0 when
            it has none.
        column_count: How many columns a CSV file without a header has (named Column1..N).
        separator: The CSV field separator.
        path_fields: Partition fields from the file's path, added as string columns.
        row_filter: Only the rows whose columns, cast to text, equal these values (None: null).
    """

    url: str
    format: TableFormat
    byte_range: tuple[int, int] | None = None
    row_groups: tuple[int, ...] | None = None
    first_row: int | None = None
    rows: int | None = None
    header_bytes: int = 0
    column_count: int | None = None
    separator: str = ","
    path_fields: dict[str, str] = field(default_factory=dict)
    row_filter: dict[str, str | None] | None = None

    def __hash__(self) -> int:
        return hash((self.url, self.byte_range, self.row_groups))

    def describe(self, url: str) -> str:
        """The part in words, for logs and failed_items.txt.

        Args:
            url: How to name the file: its full URL or just its name.

        Returns:
            `url` followed by the part's extent (rows where ..., bytes ..., rows ...).
        """
        if self.row_filter is not None:
            condition = ", ".join(f"{key}={value}" for key, value in self.row_filter.items())
            return f"{url} rows where {condition}"
        if self.byte_range is not None:
            return f"{url} bytes {self.byte_range[0]}-{self.byte_range[1] - 1}"
        if self.first_row is not None and self.rows:
            return f"{url} rows {self.first_row}-{self.first_row + self.rows - 1}"
        return url

    def to_json(self) -> dict[str, Any]:
        """The part as a JSON-compatible dict; `TablePart.from_json` reads it back.

        Returns:
            The fields, tuples as lists.
        """
        data = asdict(self)
        data["byte_range"] = _list_or_none(self.byte_range)
        data["row_groups"] = _list_or_none(self.row_groups)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TablePart:
        """A part from `to_json`'s dict.

        Args:
            data: What `to_json` returned.

        Returns:
            The part.
        """
        return cls(
            **{
                **data,
                "byte_range": _tuple_or_none(data.get("byte_range")),
                "row_groups": _tuple_or_none(data.get("row_groups")),
            }
        )


def _tuple_or_none(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)


def _list_or_none(values: tuple[int, ...] | None) -> list[int] | None:
    return None if values is None else list(values)
