"""Where a delimited or JSON-lines file may be cut: after a newline that ends a whole row.

Both scans stream the file in fixed-size pieces, so memory does not grow with the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from .errors import CorruptInputError

SCAN_PIECE_BYTES = 4 * 1024 * 1024
_NEWLINE = b"\n"


def csv_row_ends(
    stream: BinaryIO,
    start: int,
    min_bytes: int,
    name: str,
    quote: bytes = b'"',
    piece_bytes: int = SCAN_PIECE_BYTES,
) -> Iterator[int]:
    """Yield cut offsets after `start`, each the end of the first row ending `min_bytes` or more
    past the previous cut. The stream must be positioned at `start`.

    A newline ends a row only outside quotes. RFC 4180 quoting (a quote opens or closes a quoted
    field, `""` escapes one) means the quotes before a newline are even in number exactly when it
    is outside quotes, so counting them in C (`bytes.count`) replaces a per-byte state machine.

    Args:
        stream: The file, positioned at `start`.
        start: Offset of the first row to consider (after the header).
        min_bytes: The least distance between two cuts.
        name: The file's name or URL, for the error.
        quote: The quote character.
        piece_bytes: How much of the file is read at a time.

    Returns:
        An iterator of the cut offsets, ascending; the file's end is not among them unless a
        row ends there.

    Raises:
        CorruptInputError: At the end of the file, when the count of quotes is odd: the file
            has an unclosed quote or a quote in an unquoted field, and no cut in it can be
            trusted.
    """
    odd_quotes = 0
    piece_start = start
    next_cut = start + min_bytes
    while piece := stream.read(piece_bytes):
        position = 0
        while position < len(piece):
            search_from = max(position, next_cut - 1 - piece_start)
            if search_from >= len(piece):
                odd_quotes ^= piece.count(quote, position) & 1
                break
            newline = piece.find(_NEWLINE, search_from)
            if newline < 0:
                odd_quotes ^= piece.count(quote, position) & 1
                break
            odd_quotes ^= piece.count(quote, position, newline) & 1
            position = newline + 1
            if not odd_quotes:
                yield piece_start + position
                next_cut = piece_start + position + min_bytes
        piece_start += len(piece)
    if odd_quotes:
        raise CorruptInputError(
            f"{name} has an odd number of quote characters: a quoted field is not closed, or a "
            "quote appears inside an unquoted field. Quote such fields as RFC 4180 says "
            '(wrap the field in quotes and double each quote inside it: "5"" screen").'
        )


def line_ends(stream: BinaryIO, start: int, min_bytes: int, file_size: int) -> Iterator[int]:
    """Yield cut offsets after `start`, each just after the first newline `min_bytes` or more
    past the previous cut. JSON lines cannot hold a raw newline inside a value, so this seeks
    straight to each cut instead of reading the whole file.

    Args:
        stream: The file (seekable).
        start: Offset of the first line to consider.
        min_bytes: The least distance between two cuts.
        file_size: The file's size in bytes.

    Returns:
        An iterator of the cut offsets, ascending; it stops once fewer than `min_bytes` remain
        after the last cut, or no newline follows it.
    """
    cut = start
    while cut + min_bytes < file_size:
        stream.seek(cut + min_bytes - 1)
        next_cut = _after_next_newline(stream)
        if next_cut is None:
            return
        yield next_cut
        cut = next_cut


def _after_next_newline(stream: BinaryIO) -> int | None:
    position = stream.tell()
    while piece := stream.read(64 * 1024):
        newline = piece.find(_NEWLINE)
        if newline >= 0:
            return position + newline + 1
        position += len(piece)
    return None
