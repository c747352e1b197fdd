"""The plan's output: small, picklable mini-batch descriptors that name data without holding it."""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TableFormat = Literal["csv", "parquet", "jsonl"]
InputKind = Literal["files", "tabular"]
_NAMES_SHOWN = 3


@dataclass(frozen=True)
class TablePart:
    """One file's share of a tabular mini-batch: a byte range, some row groups, the rows that
    match `row_filter`, or (when all of those are None) the whole file."""

    url: str
    format: TableFormat
    byte_range: tuple[int, int] | None = None
    """`[start, end)` in bytes, cut after a newline (CSV and JSON lines)."""
    row_groups: tuple[int, ...] | None = None
    first_row: int | None = None
    """The file-wide index of the part's first row, when known from Parquet metadata."""
    rows: int | None = None
    header_bytes: int = 0
    """Length of a CSV file's header row, re-read for every byte range; 0 when it has none."""
    column_count: int | None = None
    """How many columns a CSV file without a header has (they are named Column1..N)."""
    separator: str = ","
    path_fields: dict[str, str] = field(default_factory=dict)
    """Partition fields from the file's path, added to the data as string columns."""
    row_filter: dict[str, str | None] | None = None
    """Only the rows whose columns, cast to text, equal these values (None: null)."""

    def __hash__(self) -> int:
        return hash((self.url, self.byte_range, self.row_groups))

    def describe(self, url: str) -> str:
        """`url` (the full URL or just the file name) followed by the part's extent."""
        if self.row_filter is not None:
            condition = ", ".join(f"{key}={value}" for key, value in self.row_filter.items())
            return f"{url} rows where {condition}"
        if self.byte_range is not None:
            return f"{url} bytes {self.byte_range[0]}-{self.byte_range[1] - 1}"
        if self.first_row is not None and self.rows:
            return f"{url} rows {self.first_row}-{self.first_row + self.rows - 1}"
        return url

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["byte_range"] = _list_or_none(self.byte_range)
        data["row_groups"] = _list_or_none(self.row_groups)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TablePart:
        return cls(
            **{
                **data,
                "byte_range": _tuple_or_none(data.get("byte_range")),
                "row_groups": _tuple_or_none(data.get("row_groups")),
            }
        )


@dataclass(frozen=True)
class MiniBatch:
    """A mini-batch: the files, or the table parts, that one `run()` call receives.

    `id` is stable: it hashes the descriptor (inputs, split and index), so planning the same
    inputs again gives the same ids. File contents are not part of it; `JobPlan.fingerprint`
    is what notices changed files.
    """

    index: int
    id: str
    input_name: str
    kind: InputKind
    partition_key_value: dict[str, str] | None
    item_count: int | None
    """Files, or rows when metadata knows them; None when only reading tells."""
    files: tuple[str, ...] = ()
    table_parts: tuple[TablePart, ...] = ()

    @classmethod
    def create(
        cls,
        index: int,
        input_name: str,
        kind: InputKind,
        partition_key_value: dict[str, str] | None,
        item_count: int | None,
        files: tuple[str, ...] = (),
        table_parts: tuple[TablePart, ...] = (),
    ) -> MiniBatch:
        """A mini-batch whose `id` is derived from everything else it holds.

        The hash covers the `repr` of those fields, and the file paths joined by NUL (which no
        path holds): built-in types and dataclasses print the same way on every run and
        machine, and this is several times cheaper than JSON for the tens of thousands of
        mini-batches of a big file listing.
        """
        head = repr((index, input_name, kind, partition_key_value, item_count, table_parts))
        descriptor = "\0".join((head, *files))
        digest = hashlib.sha1(descriptor.encode(), usedforsecurity=False).hexdigest()
        mini_batch_id = f"{index:06d}-{digest[:10]}"
        return cls(
            index,
            mini_batch_id,
            input_name,
            kind,
            partition_key_value,
            item_count,
            files,
            table_parts,
        )

    def __hash__(self) -> int:
        return hash(self.id)

    def describe(self) -> str:
        """One short line naming the data, e.g. "3 files: a.png, b.png, c.png"."""
        if self.kind == "files":
            names = [posixpath.basename(url) for url in self.files]
            noun = "file" if len(names) == 1 else "files"
            text = f"{len(names)} {noun}: {_first_few(names)}"
        else:
            text = _first_few(
                [part.describe(posixpath.basename(part.url)) for part in self.table_parts]
            )
        if self.partition_key_value:
            keys = " ".join(f"{key}={value}" for key, value in self.partition_key_value.items())
            text = f"{keys}: {text}"
        return text

    def failed_items_lines(self) -> list[str]:
        """Lines for failed_items.txt: each file's path or URL, or each table part's extent."""
        if self.kind == "files":
            return list(self.files)
        return [part.describe(part.url) for part in self.table_parts]

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict; `MiniBatch.from_json` reads it back."""
        return {
            "index": self.index,
            "id": self.id,
            "input_name": self.input_name,
            "kind": self.kind,
            "partition_key_value": self.partition_key_value,
            "item_count": self.item_count,
            "files": list(self.files),
            "table_parts": [part.to_json() for part in self.table_parts],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MiniBatch:
        return cls(
            **{
                **data,
                "files": tuple(data.get("files", ())),
                "table_parts": tuple(TablePart.from_json(part) for part in data["table_parts"]),
            }
        )


@dataclass
class JobPlan:
    """Every mini-batch of a job, in input order, and a fingerprint of what was listed."""

    mini_batches: list[MiniBatch]
    kind: InputKind
    fingerprint: str
    """A hash of each input file's path, size and modification time plus the split parameters;
    a resumed job whose fingerprint differs has changed inputs."""


def _first_few(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    hidden = len(names) - _NAMES_SHOWN
    return f"{shown} and {hidden} more" if hidden > 0 else shown


def _tuple_or_none(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)


def _list_or_none(values: tuple[int, ...] | None) -> list[int] | None:
    return None if values is None else list(values)
