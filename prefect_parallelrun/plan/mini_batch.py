"""The plan's output: small, picklable mini-batch descriptors that name data without holding it."""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from typing import Any, Literal

from .table_part import TablePart

__all__ = ["InputKind", "JobPlan", "MiniBatch", "TablePart"]

InputKind = Literal["files", "tabular"]
_NAMES_SHOWN = 3


@dataclass(frozen=True)
class MiniBatch:
    """A mini-batch: the files, or the table parts, that one `run()` call receives.

    `id` is stable: it hashes the descriptor (inputs, split and index), so planning the same
    inputs again gives the same ids. File contents are not part of it; `JobPlan.fingerprint`
    is what notices changed files. Build one with `create`.

    Args:
        index: Its position in the job, from 0.
        id: Its stable id, `<index:06d>-<hash>`.
        input_name: The input it comes from.
        kind: "files" or "tabular".
        partition_key_value: Its partition's key values with `partition_keys`, else None.
        item_count: Files, or rows when metadata knows them; None when only reading tells.
        files: The files' paths or URLs (file inputs).
        table_parts: The table parts (tabular inputs).
    """

    index: int
    id: str
    input_name: str
    kind: InputKind
    partition_key_value: dict[str, str] | None
    item_count: int | None
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

        Args:
            index: Its position in the job, from 0.
            input_name: The input it comes from.
            kind: "files" or "tabular".
            partition_key_value: Its partition's key values, else None.
            item_count: Files, or rows when known; None when only reading tells.
            files: The files' paths or URLs (file inputs).
            table_parts: The table parts (tabular inputs).

        Returns:
            The mini-batch, with its id.
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
        """The data in one short line, for logs and messages.

        Returns:
            E.g. "3 files: a.png, b.png, c.png", prefixed by its partition's key values.
        """
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
        """What a failed mini-batch adds to failed_items.txt.

        Returns:
            Each file's path or URL, or each table part's extent.
        """
        if self.kind == "files":
            return list(self.files)
        return [part.describe(part.url) for part in self.table_parts]

    def to_json(self) -> dict[str, Any]:
        """The mini-batch as a JSON-compatible dict; `MiniBatch.from_json` reads it back.

        Returns:
            Its fields, tuples as lists.
        """
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
        """A mini-batch from `to_json`'s dict.

        Args:
            data: What `to_json` returned.

        Returns:
            The mini-batch, with the same id.
        """
        return cls(
            **{
                **data,
                "files": tuple(data.get("files", ())),
                "table_parts": tuple(TablePart.from_json(part) for part in data["table_parts"]),
            }
        )


@dataclass
class JobPlan:
    """Every mini-batch of a job, in input order, and a fingerprint of what was listed.

    Args:
        mini_batches: The mini-batches, in input order.
        kind: "files" or "tabular".
        fingerprint: A hash of each input file's path, size and version (modification time or
            ETag) plus the split parameters; a resumed job whose fingerprint differs has
            changed inputs.
    """

    mini_batches: list[MiniBatch]
    kind: InputKind
    fingerprint: str


def _first_few(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    hidden = len(names) - _NAMES_SHOWN
    return f"{shown} and {hidden} more" if hidden > 0 else shown

