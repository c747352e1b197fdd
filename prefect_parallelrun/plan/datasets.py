"""The input specs a user builds: small, JSON-serialisable, and resolved only at plan time."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import Self

from .partitions import PartitionFormat

PathOrPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
_INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _as_path_list(path_or_paths: PathOrPaths) -> list[str]:
    if isinstance(path_or_paths, str | os.PathLike):
        return [os.fspath(path_or_paths)]
    return [os.fspath(path) for path in path_or_paths]


class _Dataset(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    paths: list[str] = Field(
        min_length=1,
        description="Local paths, folders, globs or fsspec URLs, as given by the user.",
    )
    partition_format: str | None = Field(
        default=None,
        description='Pattern naming path fields, e.g. "{user}/{date}/*.png".',
    )
    name: str | None = Field(
        default=None, description="The input's name; the planner assigns input_<position> if None."
    )

    @field_validator("paths")
    @classmethod
    def _paths_are_not_blank(cls, paths: list[str]) -> list[str]:
        if any(not path.strip() for path in paths):
            raise ValueError("paths must not contain an empty string.")
        return paths

    @field_validator("partition_format")
    @classmethod
    def _partition_format_compiles(cls, partition_format: str | None) -> str | None:
        if partition_format is not None:
            PartitionFormat.parse(partition_format)
        return partition_format

    @field_validator("name")
    @classmethod
    def _name_is_an_identifier(cls, name: str | None) -> str | None:
        if name is not None and not _INPUT_NAME.match(name):
            raise ValueError(
                f"input name {name!r} must start with a letter or underscore and hold only "
                "letters, digits and underscores."
            )
        return name

    def as_named_input(self, name: str) -> Self:
        """A copy of this dataset carrying `name`, as in Azure ML.

        Args:
            name: The input's name: letters, digits and underscores, not starting with a digit.
                It names the input in messages, logs and the mini-batch context.

        Returns:
            A new dataset; this one is unchanged.

        Raises:
            pydantic.ValidationError: `name` is not such a name.
        """
        return self.model_validate({**self.model_dump(), "name": name})


class FileDataset(_Dataset):
    """Files split into mini-batches of at most `mini_batch_size` files.

    The files are listed when the job is planned, not when the dataset is built: folders are
    walked recursively (hidden files skipped) and the files sorted by path, so the same files
    give the same mini-batches. `run()` receives a list of local absolute paths; remote files
    are fetched to the worker first. A path that matches nothing fails the plan with an
    `InputNotFoundError`; build it with `from_files`.

    Args:
        paths: Local paths, folders, globs or fsspec URLs; at least one, none blank.
        partition_format: Pattern naming path fields, e.g. `"{user}/{date:yyyy/MM/dd}/*.png"`,
            matched against the end of each file's path; for `partition_keys`.
        name: The input's name; `input_<position>` when None.
        kind: Always "files".

    Example:
        ```python
        images = FileDataset.from_files("data/images/**/*.png").as_named_input("images")
        ```
    """

    kind: Literal["files"] = "files"

    @classmethod
    def from_files(
        cls, path_or_paths: PathOrPaths, partition_format: str | None = None
    ) -> FileDataset:
        """Files from local paths, folders (recursive), globs or fsspec URLs.

        Args:
            path_or_paths: One path, folder, glob or URL, or a list of them.
            partition_format: Pattern naming path fields, e.g. `"{user}/{date}/*.png"`.

        Returns:
            The dataset; nothing is listed until the job is planned.

        Raises:
            pydantic.ValidationError: A path is blank, or `partition_format` is malformed.
        """
        return cls(paths=_as_path_list(path_or_paths), partition_format=partition_format)


class TabularDataset(_Dataset):
    """Delimited, Parquet or JSON-lines files split into mini-batches of about
    `mini_batch_size` bytes, each loaded as a pandas DataFrame.

    A mini-batch never spans two files: delimited and JSON-lines files are cut after a whole
    row, Parquet files between row groups. `run()` receives a DataFrame of the mini-batch's
    rows, with each path field added as a string column (unless the data has one of that
    name). A file whose structure cannot be
    split safely (unclosed CSV quotes, a broken Parquet footer) fails the plan with a
    `CorruptInputError`; build it with a `from_*` method.

    Args:
        paths: Local paths, folders, globs or fsspec URLs; at least one, none blank.
        partition_format: Pattern naming path fields, e.g. `"{region}/*.csv"`.
        name: The input's name; `input_<position>` when None.
        kind: Always "tabular".
        format: The files' format: "csv", "parquet" or "jsonl".
        separator: The field separator of delimited files: one character, not a quote or
            newline.
        header: Whether each delimited file starts with a header row; without one the columns
            are named `Column1..ColumnN`.

    Example:
        ```python
        sales = TabularDataset.from_delimited_files("data/sales/*.csv", separator=";")
        ```
    """

    kind: Literal["tabular"] = "tabular"
    format: Literal["csv", "parquet", "jsonl"] = Field(description="The files' format.")
    separator: str = Field(default=",", description="The field separator of delimited files.")
    header: bool = Field(
        default=True, description="Whether each delimited file starts with a header row."
    )

    @field_validator("separator")
    @classmethod
    def _separator_is_one_character(cls, separator: str) -> str:
        if len(separator) != 1 or separator in '\r\n"':
            raise ValueError(
                f"separator must be one character other than a quote or newline; got {separator!r}."
            )
        return separator

    @classmethod
    def from_delimited_files(
        cls,
        paths: PathOrPaths,
        separator: str = ",",
        header: bool = True,
        partition_format: str | None = None,
    ) -> TabularDataset:
        """Delimited text files (CSV, TSV, ...) in UTF-8, quoted as RFC 4180 describes.

        Args:
            paths: One path, folder, glob or URL, or a list of them.
            separator: The field separator: one character, not a quote or newline.
            header: Whether each file starts with a header row.
            partition_format: Pattern naming path fields, e.g. `"{region}/*.csv"`.

        Returns:
            The dataset; nothing is read until the job is planned.

        Raises:
            pydantic.ValidationError: A path is blank, the separator is not one allowed
                character, or `partition_format` is malformed.
        """
        return cls(
            format="csv",
            paths=_as_path_list(paths),
            separator=separator,
            header=header,
            partition_format=partition_format,
        )

    @classmethod
    def from_parquet_files(
        cls, paths: PathOrPaths, partition_format: str | None = None
    ) -> TabularDataset:
        """Parquet files, split by row groups: a mini-batch is consecutive row groups of one
        file, added until they reach `mini_batch_size` compressed bytes; no row group is cut.

        Args:
            paths: One path, folder, glob or URL, or a list of them.
            partition_format: Pattern naming path fields, e.g. `"{region}/*.parquet"`.

        Returns:
            The dataset; when the job is planned only the files' footers are read, which also
            give each mini-batch's row count.

        Raises:
            pydantic.ValidationError: A path is blank, or `partition_format` is malformed.
        """
        return cls(format="parquet", paths=_as_path_list(paths), partition_format=partition_format)

    @classmethod
    def from_json_lines_files(
        cls, paths: PathOrPaths, partition_format: str | None = None
    ) -> TabularDataset:
        """JSON lines files: one JSON object per line, in UTF-8; a mini-batch is cut after a
        newline, and a field missing from a line is null in the DataFrame.

        Args:
            paths: One path, folder, glob or URL, or a list of them.
            partition_format: Pattern naming path fields, e.g. `"{region}/*.jsonl"`.

        Returns:
            The dataset. Planning the job reads only around each cut, to find the next newline.

        Raises:
            pydantic.ValidationError: A path is blank, or `partition_format` is malformed.
        """
        return cls(format="jsonl", paths=_as_path_list(paths), partition_format=partition_format)


Dataset = FileDataset | TabularDataset
"""Either kind of input a job takes."""
