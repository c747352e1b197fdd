"""Partition fields from file paths: `partition_format` patterns and hive `key=value/` folders."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from .errors import PartitionFormatError

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")
_DATE_TOKEN = re.compile(r"(yyyy|MM|dd|HH|mm|ss)")
_WILDCARD = re.compile(r"(\*\*|\*|\?)")
_WILDCARD_PATTERNS = {"**": ".*", "*": "[^/]*", "?": "[^/]"}


@dataclass(frozen=True)
class PartitionFormat:
    """A compiled `partition_format` such as `"{user}/{date:yyyy/MM/dd}/*.png"`.

    The format is matched against the end of each file's path, as in Azure ML, so it does not
    have to spell out the folder the input starts from. Build it with `parse`.

    Args:
        text: The format as given.
        fields: Its field names, in order.
        pattern: The compiled regular expression, one named group per field.
    """

    text: str
    fields: tuple[str, ...]
    pattern: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> PartitionFormat:
        """Compile a `partition_format`.

        Args:
            text: Fields in braces (`{name}`, or `{name:yyyy/MM/dd}` for dates), `*`, `**` and
                `?` wildcards, and literal text.

        Returns:
            The compiled format.

        Raises:
            PartitionFormatError: A brace is stray, or a field is named twice.
        """
        body, fields, position = [], [], 0
        for match in _FIELD.finditer(text):
            body.append(_literal(text[position : match.start()], text))
            name, date_format = match.group(1), match.group(2)
            if name in fields:
                raise PartitionFormatError(
                    f"partition_format {text!r} names the field {name!r} twice; "
                    "give each field a distinct name."
                )
            fields.append(name)
            body.append(f"(?P<{name}>{_date_pattern(date_format) if date_format else '[^/]+'})")
            position = match.end()
        body.append(_literal(text[position:], text))
        pattern = re.compile("(?:^|/)" + "".join(body).lstrip("/") + "$")
        return cls(text=text, fields=tuple(fields), pattern=pattern)

    def fields_of(self, path: str) -> dict[str, str] | None:
        """The field values in `path`.

        Args:
            path: A file's path (a URL without its scheme).

        Returns:
            Field name -> value; None when `path` does not match the format.
        """
        match = self.pattern.search(path)
        return match.groupdict() if match else None


def _literal(text: str, whole: str) -> str:
    if "{" in text or "}" in text:
        raise PartitionFormatError(
            f"partition_format {whole!r} has a stray brace near {text!r}; fields look like "
            "{name} or {name:yyyy/MM/dd}."
        )
    return "".join(
        _WILDCARD_PATTERNS.get(piece, re.escape(piece)) for piece in _WILDCARD.split(text)
    )


def _date_pattern(date_format: str) -> str:
    return "".join(
        r"\d{4}"
        if piece == "yyyy"
        else r"\d{2}"
        if _DATE_TOKEN.fullmatch(piece)
        else re.escape(piece)
        for piece in _DATE_TOKEN.split(date_format)
    )


def hive_fields(path: str) -> dict[str, str]:
    """The `key=value` folder names in `path` (values percent-decoded, as Spark writes them).

    Args:
        path: A file's path.

    Returns:
        Key -> value for each such folder; the file's own name is not read.
    """
    fields: dict[str, str] = {}
    for folder in path.split("/")[:-1]:
        key, equals, value = folder.partition("=")
        if equals and key:
            fields[key] = unquote(value)
    return fields


def path_fields(path: str, partition_format: PartitionFormat | None) -> dict[str, str]:
    """All partition fields of one file: hive folders, overridden by `partition_format` fields.

    Args:
        path: The file's path (a URL without its scheme).
        partition_format: The input's compiled format; None for hive folders only.

    Returns:
        Field name -> value.

    Raises:
        PartitionFormatError: A format is given and the path does not match it.
    """
    fields = hive_fields(path) if "=" in path else {}
    if partition_format is None:
        return fields
    matched = partition_format.fields_of(path)
    if matched is None:
        raise PartitionFormatError(
            f"{path} does not match partition_format {partition_format.text!r}; change the "
            "format so that it matches the end of every file's path, or remove that file."
        )
    fields.update(matched)
    return fields
